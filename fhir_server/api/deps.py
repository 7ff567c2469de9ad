"""Per-request helpers shared by the routers: context, base URL, body, preconditions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.errors import UnsupportedMediaType
from fhir_server.http.body import parse_json, read_limited
from fhir_server.http.headers import etag, http_date, instant, parse_etag, prefer_return
from fhir_server.http.negotiation import check_body_media_type
from fhir_server.http.responses import Negotiated, fhir_response, outcome, stored_response
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import StoredVersion, WriteResult

JSON_PATCH = "application/json-patch+json"


def context(request: Request) -> ServiceContext:
    """The ServiceContext built in the lifespan."""
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def base_url(request: Request) -> str:
    """The absolute base of the FHIR API, for links and Location headers."""
    configured = context(request).settings.fhir_base_url
    if configured:
        return configured.rstrip("/")
    return f"{str(request.base_url).rstrip('/')}/fhir"


async def json_body(request: Request) -> tuple[Any, str]:
    """The request body parsed and as text, after media type, size, UTF-8, depth checks."""
    settings = context(request).settings
    check_body_media_type(request.headers.get("content-type"))
    raw = await read_limited(request.stream(), request.headers.get("content-length"),
                             settings.max_body_bytes)
    value = parse_json(raw, settings.max_json_depth)
    return value, raw.decode("utf-8-sig")


async def patch_body(request: Request) -> tuple[str, Any]:
    """A PATCH body: (media type, parsed JSON); JSON Patch or FHIR JSON (Parameters)."""
    settings = context(request).settings
    content_type = request.headers.get("content-type") or ""
    media = content_type.split(";")[0].strip().lower()
    if media != JSON_PATCH:
        try:
            check_body_media_type(content_type)
        except UnsupportedMediaType as exc:
            raise UnsupportedMediaType(
                f"{exc.diagnostics}; a PATCH takes {JSON_PATCH} (JSON Patch) or "
                "application/fhir+json (a FHIRPath Patch Parameters resource)") from None
    raw = await read_limited(request.stream(), request.headers.get("content-length"),
                             settings.max_body_bytes)
    return media, parse_json(raw, settings.max_json_depth)


def if_match(request: Request) -> int | None:
    """The version in ``If-Match``, if the header is present."""
    value = request.headers.get("if-match")
    return None if value is None else parse_etag(value)


def version_headers(version: StoredVersion) -> dict[str, str]:
    """ETag and Last-Modified of a version."""
    return {"ETag": etag(version.version_id), "Last-Modified": http_date(version.last_updated)}


def location(base: str, version: StoredVersion) -> str:
    """The version-specific URL of a version."""
    return f"{base}/{version.resource_type}/{version.id}/_history/{version.version_id}"


def write_response(request: Request, result: WriteResult, neg: Negotiated,
                   status: int) -> Response:
    """Answer a create or update honouring ``Prefer: return=...``."""
    version = result.version
    assert version is not None and version.content is not None
    headers = version_headers(version)
    headers["Location"] = location(base_url(request), version)
    preference = prefer_return(request.headers.get("prefer"))
    if preference == "minimal":
        return Response(status_code=status, headers=headers)
    if preference == "OperationOutcome":
        text = (f"{version.resource_type}/{version.id} {result.outcome}; version "
                f"{version.version_id} at {instant(version.last_updated)}")
        return fhir_response(outcome("information", "informational", text), neg, status,
                             headers)
    return stored_response(version.content, neg, status, headers)


def delete_response(request: Request, result: WriteResult, neg: Negotiated,
                    what: str) -> Response:
    """Answer a delete: 204, or 200 with an OperationOutcome when the client prefers one."""
    deleted = result.outcome == "deleted" and result.version is not None
    headers = version_headers(result.version) if deleted and result.version else {}
    if prefer_return(request.headers.get("prefer")) == "OperationOutcome":
        text = f"{what} deleted" if deleted else f"{what}: nothing to delete"
        return fhir_response(outcome("information", "informational", text), neg, 200, headers)
    return Response(status_code=204, headers=headers)
