"""Instance interactions: read, vread, update, patch, delete."""

from __future__ import annotations

from fhir_server.api.common import deleted, if_match, patch_body, resource_body, written
from fhir_server.api.headers import parse_etag, parse_http_date
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.subsetting import subset
from fhir_server.errors import BadRequest
from fhir_server.service import read as read_service
from fhir_server.service import write as write_service
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import StoredVersion


def not_modified(request: FhirRequest, version: StoredVersion) -> bool:
    """Whether If-None-Match / If-Modified-Since make this a 304."""
    none_match = request.header("if-none-match")
    if none_match is not None:
        tags = [t.strip() for t in none_match.split(",") if t.strip()]
        return "*" in tags or any(
            parse_etag(t, "If-None-Match") == version.version_id for t in tags)
    since = request.header("if-modified-since")
    if since is not None:
        try:
            moment = parse_http_date(since)
        except BadRequest:
            return False  # RFC 9110 13.1.3: an invalid date is ignored
        # HTTP dates have whole seconds.
        return version.last_updated.replace(microsecond=0) <= moment
    return False


def _answer(request: FhirRequest, ctx: ServiceContext, version: StoredVersion) -> FhirResponse:
    if not_modified(request, version):
        return FhirResponse(304, version=version)
    assert version.content is not None
    return FhirResponse(200, subset(request, ctx, version.content) or version.content,
                        version=version)


async def read(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """read: the current version."""
    params = request.params
    version = await read_service.read(ctx, params["resource_type"], params["id"])
    return _answer(request, ctx, version)


async def vread(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """vread: one version from history."""
    params = request.params
    version = await read_service.vread(ctx, params["resource_type"], params["id"],
                                       params["vid"])
    return _answer(request, ctx, version)


async def update(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """update (and update-as-create for a new id)."""
    body, text = resource_body(request, ctx)
    result = await write_service.update(ctx, request.params["resource_type"],
                                        request.params["id"], body, text, if_match(request))
    return written(request, result, 201 if result.outcome == "created" else 200)


async def patch(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """patch: JSON Patch or FHIRPath Patch (Parameters); the result is validated."""
    media, body = patch_body(request, ctx)
    result = await write_service.patch(ctx, request.params["resource_type"],
                                       request.params["id"], media, body, if_match(request))
    return written(request, result, 200)


async def delete(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """delete: 204, or 200 with an OperationOutcome when the client prefers one."""
    rtype, id = request.params["resource_type"], request.params["id"]
    result = await write_service.delete(ctx, rtype, id, if_match(request))
    return deleted(request, result, f"{rtype}/{id}")
