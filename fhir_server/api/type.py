"""Type interactions: create (also conditional) and conditional update and delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_server.api.deps import (
    context,
    delete_response,
    if_match,
    json_body,
    patch_body,
    write_response,
)
from fhir_server.errors import BadRequest
from fhir_server.http.responses import Negotiated
from fhir_server.service import write as write_service

router = APIRouter()


def _criteria(request: Request) -> str:
    criteria = request.url.query
    if not criteria:
        raise BadRequest(f"{request.method} on a resource type needs search criteria "
                         "(a conditional interaction)")
    return criteria


@router.post("/fhir/{resource_type}")
async def create(resource_type: str, request: Request) -> Response:
    """create: 201 with a server-assigned id; ``If-None-Exist`` makes it conditional."""
    neg = Negotiated.from_request(request)
    body, text = await json_body(request)
    result = await write_service.create(context(request), resource_type, body, text,
                                        request.headers.get("if-none-exist"))
    return write_response(request, result, neg, 200 if result.outcome == "found" else 201)


@router.put("/fhir/{resource_type}")
async def conditional_update(resource_type: str, request: Request) -> Response:
    """Conditional update: ``PUT /Type?criteria``."""
    neg = Negotiated.from_request(request)
    criteria = _criteria(request)
    body, text = await json_body(request)
    result = await write_service.conditional_update(context(request), resource_type,
                                                    criteria, body, text, if_match(request))
    return write_response(request, result, neg, 201 if result.outcome == "created" else 200)


@router.patch("/fhir/{resource_type}")
async def conditional_patch(resource_type: str, request: Request) -> Response:
    """Conditional patch: ``PATCH /Type?criteria`` patches the single match."""
    neg = Negotiated.from_request(request)
    criteria = _criteria(request)
    media, body = await patch_body(request)
    result = await write_service.conditional_patch(context(request), resource_type, criteria,
                                                   media, body, if_match(request))
    return write_response(request, result, neg, 200)


@router.delete("/fhir/{resource_type}")
async def conditional_delete(resource_type: str, request: Request) -> Response:
    """Conditional delete: ``DELETE /Type?criteria`` (one match at most)."""
    neg = Negotiated.from_request(request)
    result = await write_service.conditional_delete(context(request), resource_type,
                                                    _criteria(request))
    return delete_response(request, result, neg, resource_type)
