"use strict";
// Swagger UI over the OpenAPI documents of the FHIR API: the system document, or one
// resource type's, picked in the <select> (loaded on demand; ?doc=Patient deep-links).
// Kept out of the HTML so the page needs no 'unsafe-inline' script; validatorUrl=null
// stops Swagger UI from sending the documents to validator.swagger.io.
(function () {
  var root = document.getElementById("swagger-ui");
  var select = document.getElementById("fhir-doc");
  var urls = Array.prototype.map.call(select.options, function (o) {
    return {url: o.value, name: o.getAttribute("data-name")};
  });
  var wanted = new URLSearchParams(window.location.search).get("doc");
  var start = urls.filter(function (u) { return u.name === wanted; })[0] || urls[0];
  select.value = start.url;
  window.ui = SwaggerUIBundle({
    // No "urls": without the standalone preset's top bar Swagger UI would then load
    // nothing; the <select> above plays its part.
    url: start.url, domNode: root,
    validatorUrl: null, presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout",
    deepLinking: true, docExpansion: "none", defaultModelsExpandDepth: 0, filter: true,
    displayRequestDuration: true, showExtensions: true, showCommonExtensions: true,
    // "Authorize": the built-in server's authorization code flow ends on this page
    persistAuthorization: false,
    oauth2RedirectUrl: window.location.origin + root.getAttribute("data-redirect")
  });
  // PKCE (the docs are a public client); SMART asks for the FHIR base as "aud".
  window.ui.initOAuth({
    usePkceWithAuthorizationCodeGrant: true,
    scopes: "openid fhirUser user/*.rs",
    additionalQueryStringParams: {aud: window.location.origin + root.getAttribute("data-fhir")}
  });
  select.addEventListener("change", function () {
    var chosen = urls[select.selectedIndex];
    window.ui.specActions.updateUrl(chosen.url);
    window.ui.specActions.download(chosen.url);
    var query = chosen === urls[0] ? "" : "?doc=" + encodeURIComponent(chosen.name);
    window.history.replaceState(null, "", window.location.pathname + query);
  });
})();
