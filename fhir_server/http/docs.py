"""Self-hosted interactive API docs (Swagger UI) and the route of the OpenAPI document.

``docs_routes`` serve Swagger UI from the ``fastapi-swagger`` wheel so the page works
without any CDN and under a strict Content-Security-Policy (no inline script), and the
document that ``openapi.openapi_provider`` builds.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

ASSET_PACKAGE = "fastapi_swagger.resources"  # pip: fastapi-swagger (ships swagger-ui dist)
# Allow-list of served files: anything else (incl. traversal attempts) is a 404.
_PACKAGE_ASSETS = MappingProxyType({"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
                                     "swagger-ui.css": "text/css; charset=utf-8",
                                     "favicon-32x32.png": "image/png"})
_INIT_JS_NAME = "fhir-docs-init.js"
# Kept out of the HTML so the page needs no 'unsafe-inline' script; validatorUrl=null stops
# Swagger UI from sending the spec to validator.swagger.io.
_INIT_JS = """\
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"), domNode: root, validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout", deepLinking: true,
    docExpansion: "none", defaultModelsExpandDepth: 0, filter: true,
    displayRequestDuration: true, showExtensions: true, showCommonExtensions: true
  });
})();
"""
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _load_assets() -> dict[str, _Asset]:
    try:
        root = resources.files(ASSET_PACKAGE)
    except ModuleNotFoundError as exc:  # fail at startup, not on the first docs request
        raise RuntimeError("API docs need the 'fastapi-swagger' package") from exc
    files = {name: (root / name).read_bytes() for name in _PACKAGE_ASSETS}
    files[_INIT_JS_NAME] = _INIT_JS.encode()
    types = {**_PACKAGE_ASSETS, _INIT_JS_NAME: "text/javascript; charset=utf-8"}
    return {name: _Asset(body, types[name], f'"{hashlib.sha256(body).hexdigest()[:24]}"')
            for name, body in files.items()}


def _docs_html(title: str, spec_url: str, asset_url: Callable[[str], str]) -> str:
    e = html.escape
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<link rel="icon" type="image/png" href="{e(asset_url("favicon-32x32.png"))}">
<link rel="stylesheet" href="{e(asset_url("swagger-ui.css"))}">
</head>
<body>
<noscript>This page needs JavaScript. The OpenAPI document is at
<a href="{e(spec_url)}">{e(spec_url)}</a>.</noscript>
<div id="swagger-ui" data-openapi-url="{e(spec_url)}"></div>
<script src="{e(asset_url("swagger-ui-bundle.js"))}"></script>
<script src="{e(asset_url(_INIT_JS_NAME))}"></script>
</body>
</html>
"""


def docs_routes(get_openapi: Callable[[], bytes], *,
                title: str = "FHIR R4 Server API") -> list[Route]:
    """The routes serving Swagger UI (``/api/docs``, ``/api/docs/static/{file}``) and
    ``/api/openapi.json`` (``get_openapi()``). Asset URLs on the page carry a content
    hash (``?v=``), so those responses may be cached forever.
    """
    assets = _load_assets()
    token = hashlib.sha256(b"".join(a.etag.encode() for a in assets.values())).hexdigest()[:16]

    async def api_docs(request: Request) -> Response:
        """Swagger UI page; URLs are path-only and honour the ASGI root_path."""
        def asset_url(name: str) -> str:
            return f"{request.url_for('fhir_api_docs_static', file=name).path}?v={token}"

        spec_url = request.url_for("fhir_openapi_json").path
        return HTMLResponse(_docs_html(title, spec_url, asset_url), headers={
            "Cache-Control": _REVALIDATE, "Content-Security-Policy": _CSP,
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    async def api_docs_static(request: Request) -> Response:
        """One allow-listed Swagger UI file; anything else is 404 (no filesystem lookup)."""
        asset = assets.get(request.path_params["file"])
        if asset is None:
            raise HTTPException(status_code=404, detail="Not Found")
        # Only the hashed URL the page uses may be cached forever.
        cache = _IMMUTABLE if request.query_params.get("v") == token else _REVALIDATE
        headers = {"Cache-Control": cache, "ETag": asset.etag,
                   "X-Content-Type-Options": "nosniff"}
        if_none_match = request.headers.get("if-none-match", "")
        if if_none_match.strip() == "*" or asset.etag in if_none_match:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    async def openapi_json(request: Request) -> Response:
        """The OpenAPI document (bytes from ``get_openapi``)."""
        return Response(get_openapi(), media_type="application/json",
                        headers={"Cache-Control": _REVALIDATE})

    return [Route("/api/docs", api_docs, methods=["GET", "HEAD"], name="fhir_api_docs"),
            Route("/api/docs/static/{file}", api_docs_static, methods=["GET", "HEAD"],
                  name="fhir_api_docs_static"),
            Route("/api/openapi.json", openapi_json, methods=["GET", "HEAD"],
                  name="fhir_openapi_json")]
