"use strict";
// Where the "Authorize" popup of /api/docs lands after the authorization server: the
// authorization code (or the error) goes back to the page that opened it, which
// exchanges it for a token (PKCE), and the popup closes. An external script, so the
// page needs no 'unsafe-inline'.
(function () {
  var flow = window.opener && window.opener.swaggerUIRedirectOauth2;
  var status = document.getElementById("status");
  if (!flow) {
    status.textContent = "This page ends a sign-in started from the API documentation " +
      "(/api/docs); open that page and use its Authorize button.";
    return;
  }
  var params = new URLSearchParams(window.location.search);
  var name = flow.auth && flow.auth.name;
  if (params.get("state") !== flow.state) {
    flow.errCb({authId: name, source: "auth", level: "warning",
                message: "the sign-in answer does not match the request (state): refused"});
  } else if (params.get("code")) {
    delete flow.state;
    flow.auth.code = params.get("code");
    flow.callback({auth: flow.auth, redirectUrl: flow.redirectUrl});
  } else {
    flow.errCb({authId: name, source: "auth", level: "error",
                message: params.get("error_description") || params.get("error") ||
                         "the authorization server returned no code"});
  }
  window.close();
})();
