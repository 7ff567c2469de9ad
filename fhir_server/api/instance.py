"""Instance interactions: read, vread, update, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_server.api.deps import (
    context,
    delete_response,
    if_match,
    json_body,
    patch_body,
    version_headers,
    write_response,
)
from fhir_server.api.subsetting import subset_response
from fhir_server.errors import BadRequest
from fhir_server.http.headers import parse_etag, parse_http_date
from fhir_server.http.responses import Negotiated, stored_response
from fhir_server.service import read as read_service
from fhir_server.service import write as write_service
from fhir_server.service.repository import StoredVersion

router = APIRouter()


def _not_modified(request: Request, version: StoredVersion) -> bool:
    """Whether If-None-Match / If-Modified-Since make this a 304."""
    none_match = request.headers.get("if-none-match")
    if none_match is not None:
        tags = [t.strip() for t in none_match.split(",") if t.strip()]
        return "*" in tags or any(
            parse_etag(t, "If-None-Match") == version.version_id for t in tags)
    since = request.headers.get("if-modified-since")
    if since is not None:
        try:
            moment = parse_http_date(since)
        except BadRequest:
            return False  # RFC 9110 13.1.3: an invalid date is ignored
        # HTTP dates have whole seconds.
        return version.last_updated.replace(microsecond=0) <= moment
    return False


def _answer(request: Request, version: StoredVersion, neg: Negotiated) -> Response:
    headers = version_headers(version)
    if _not_modified(request, version):
        return Response(status_code=304, headers=headers)
    assert version.content is not None
    subset = subset_response(request, version.content, neg, headers)
    if subset is not None:
        return subset
    return stored_response(version.content, neg, 200, headers)


@router.get("/fhir/{resource_type}/{id}")
async def read(resource_type: str, id: str, request: Request) -> Response:
    """read: the current version."""
    neg = Negotiated.from_request(request)
    version = await read_service.read(context(request), resource_type, id)
    return _answer(request, version, neg)


@router.get("/fhir/{resource_type}/{id}/_history/{vid}")
async def vread(resource_type: str, id: str, vid: str, request: Request) -> Response:
    """vread: one version from history."""
    neg = Negotiated.from_request(request)
    version = await read_service.vread(context(request), resource_type, id, vid)
    return _answer(request, version, neg)


@router.put("/fhir/{resource_type}/{id}")
async def update(resource_type: str, id: str, request: Request) -> Response:
    """update (and update-as-create for a new id)."""
    neg = Negotiated.from_request(request)
    body, text = await json_body(request)
    result = await write_service.update(context(request), resource_type, id, body, text,
                                        if_match(request))
    return write_response(request, result, neg, 201 if result.outcome == "created" else 200)


@router.patch("/fhir/{resource_type}/{id}")
async def patch(resource_type: str, id: str, request: Request) -> Response:
    """patch: JSON Patch or FHIRPath Patch (Parameters); the result is validated."""
    neg = Negotiated.from_request(request)
    media, body = await patch_body(request)
    result = await write_service.patch(context(request), resource_type, id, media, body,
                                       if_match(request))
    return write_response(request, result, neg, 200)


@router.delete("/fhir/{resource_type}/{id}")
async def delete(resource_type: str, id: str, request: Request) -> Response:
    """delete: 204, or 200 with an OperationOutcome when the client prefers one."""
    neg = Negotiated.from_request(request)
    result = await write_service.delete(context(request), resource_type, id, if_match(request))
    return delete_response(request, result, neg, f"{resource_type}/{id}")
