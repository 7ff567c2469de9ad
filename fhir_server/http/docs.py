"""Self-hosted interactive API docs (Swagger UI) and the routes of the OpenAPI documents.

``docs_routes`` serve Swagger UI from the ``fastapi-swagger`` wheel, so the page works
without any CDN and under a strict Content-Security-Policy (no inline script), with a
selector of the documents ``openapi.openapi_provider`` builds: the system document
(``/api/openapi.json``) and one per resource type (``/api/openapi/{type}.json``), each
loaded only when picked.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

ASSET_PACKAGE = "fastapi_swagger.resources"  # pip: fastapi-swagger (ships swagger-ui dist)
# Allow-list of served files: anything else (incl. traversal attempts) is a 404.
_PACKAGE_ASSETS = MappingProxyType({"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
                                     "swagger-ui.css": "text/css; charset=utf-8",
                                     "favicon-32x32.png": "image/png"})
_OWN_ASSETS = MappingProxyType({"docs-init.js": "text/javascript; charset=utf-8",
                                "docs-oauth2-redirect.js": "text/javascript; charset=utf-8",
                                "docs.css": "text/css; charset=utf-8"})
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_IMMUTABLE = "public, max-age=31536000, immutable"
_PAGE_HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": _CSP,
                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_REVALIDATE = "no-cache"
_JSON = "application/json"


@runtime_checkable
class OpenApiSource(Protocol):
    """The documents (``openapi.OpenApiDocuments``)."""

    @property
    def names(self) -> Sequence[str]:
        """The resource types that have a document, in order."""
        ...

    def system(self) -> bytes:
        """The system document's JSON."""
        ...

    def document(self, name: str) -> bytes | None:
        """A type's document's JSON, or None for no such type."""
        ...


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:24]}"'


def _load_assets() -> dict[str, _Asset]:
    try:
        root = resources.files(ASSET_PACKAGE)
    except ModuleNotFoundError as exc:  # fail at startup, not on the first docs request
        raise RuntimeError("API docs need the 'fastapi-swagger' package") from exc
    own = resources.files("fhir_server.http").joinpath("static")
    files = {name: (root / name).read_bytes() for name in _PACKAGE_ASSETS}
    files |= {name: own.joinpath(name).read_bytes() for name in _OWN_ASSETS}
    types = {**_PACKAGE_ASSETS, **_OWN_ASSETS}
    return {name: _Asset(body, types[name], _etag(body)) for name, body in files.items()}


def _source(got: object) -> OpenApiSource | None:
    """The documents the app's callable gives, or None when it gives bare JSON."""
    return got if isinstance(got, OpenApiSource) else None


def _redirect_html(asset_url: Callable[[str], str]) -> str:
    """The end of the "Authorize" popup's OAuth flow (its script does the work)."""
    script = html.escape(asset_url("docs-oauth2-redirect.js"))
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Signing in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><p id="status" role="status">Signing in&hellip;</p>
<script src="{script}"></script></body>
</html>
"""


def _docs_html(title: str, options: list[tuple[str, str, str]],
               asset_url: Callable[[str], str], redirect: str = "", fhir: str = "/fhir"
               ) -> str:
    """The page; ``options`` are (name, label, document URL), the system's first."""
    e = html.escape
    choices = "\n".join(f'<option value="{e(url)}" data-name="{e(name)}">{e(label)}</option>'
                        for name, label, url in options)
    spec_url = options[0][2]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<link rel="icon" type="image/png" href="{e(asset_url("favicon-32x32.png"))}">
<link rel="stylesheet" href="{e(asset_url("swagger-ui.css"))}">
<link rel="stylesheet" href="{e(asset_url("docs.css"))}">
</head>
<body>
<div class="fhir-docs-bar"><strong>{e(title)}</strong>
<label for="fhir-doc">Document</label>
<select id="fhir-doc">
{choices}
</select>
<a href="{e(spec_url)}">OpenAPI JSON</a></div>
<noscript>This page needs JavaScript. The OpenAPI document is at
<a href="{e(spec_url)}">{e(spec_url)}</a>.</noscript>
<div id="swagger-ui" data-openapi-url="{e(spec_url)}" data-redirect="{e(redirect)}"
 data-fhir="{e(fhir)}"></div>
<script src="{e(asset_url("swagger-ui-bundle.js"))}"></script>
<script src="{e(asset_url("docs-init.js"))}"></script>
</body>
</html>
"""


def _json(request: Request, body: bytes) -> Response:
    """A document, revalidated by ETag; behind a root_path its ``servers`` names it (the
    paths are ``/fhir/...`` from the server root)."""
    root = request.scope.get("root_path", "").rstrip("/")
    if root and body.startswith(b"{") and b'"servers"' not in body[:64]:
        body = b'{"servers":[{"url":' + orjson.dumps(root) + b"}]," + body[1:]
    tag = _etag(body)
    headers = {"Cache-Control": _REVALIDATE, "ETag": tag, "X-Content-Type-Options": "nosniff"}
    if tag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=_JSON, headers=headers)


def docs_routes(get_openapi: Callable[[], bytes | OpenApiSource], *,
                title: str = "FHIR R4 Server API") -> list[Route]:
    """The routes serving Swagger UI (``/api/docs``, ``/api/docs/static/{file}``) and the
    documents: ``/api/openapi.json`` and ``/api/openapi/{type}.json``.

    ``get_openapi()`` gives the documents (an :class:`OpenApiSource`), or only the system
    document's JSON (then the page offers that one alone). Asset URLs on the page carry
    a content hash (``?v=``), so those responses may be cached forever.
    """
    assets = _load_assets()
    token = hashlib.sha256(b"".join(a.etag.encode() for a in assets.values())).hexdigest()[:16]

    def system_json() -> bytes:
        got = get_openapi()
        source = _source(got)
        if source is not None:
            return source.system()
        assert isinstance(got, bytes)
        return bytes(got)

    async def api_docs(request: Request) -> Response:
        """Swagger UI page; URLs are path-only and honour the ASGI root_path."""
        def asset_url(name: str) -> str:
            return f"{request.url_for('fhir_api_docs_static', file=name).path}?v={token}"

        source = _source(get_openapi())
        options = [("system", "System: every route", request.url_for("fhir_openapi_json").path)]
        for name in source.names if source is not None else ():
            options.append((name, name, request.url_for("fhir_openapi_type", name=name).path))
        root = request.scope.get("root_path", "").rstrip("/")
        redirect = request.url_for("fhir_api_docs_oauth2_redirect").path
        return HTMLResponse(_docs_html(title, options, asset_url, redirect, f"{root}/fhir"),
                            headers=_PAGE_HEADERS)

    async def oauth2_redirect(request: Request) -> Response:
        """Where the authorization server sends the "Authorize" popup back."""
        def asset_url(name: str) -> str:
            return f"{request.url_for('fhir_api_docs_static', file=name).path}?v={token}"

        return HTMLResponse(_redirect_html(asset_url), headers=_PAGE_HEADERS)

    async def api_docs_static(request: Request) -> Response:
        """One allow-listed file; anything else is 404 (no filesystem lookup)."""
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
        """The system document."""
        return _json(request, system_json())

    async def openapi_type(request: Request) -> Response:
        """One resource type's document; 404 for a name that is no type here."""
        source = _source(get_openapi())
        body = source.document(request.path_params["name"]) if source is not None else None
        if body is None:
            raise HTTPException(status_code=404, detail="Not Found")
        return _json(request, body)

    return [Route("/api/docs", api_docs, methods=["GET", "HEAD"], name="fhir_api_docs"),
            Route("/api/docs/oauth2-redirect", oauth2_redirect, methods=["GET"],
                  name="fhir_api_docs_oauth2_redirect"),
            Route("/api/docs/static/{file}", api_docs_static, methods=["GET", "HEAD"],
                  name="fhir_api_docs_static"),
            Route("/api/openapi.json", openapi_json, methods=["GET", "HEAD"],
                  name="fhir_openapi_json"),
            Route("/api/openapi/{name}.json", openapi_type, methods=["GET", "HEAD"],
                  name="fhir_openapi_type")]
