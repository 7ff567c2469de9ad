"""Type interactions: create (search arrives with the search issue)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_server.api.deps import context, json_body, write_response
from fhir_server.http.responses import Negotiated
from fhir_server.service import write as write_service

router = APIRouter()


@router.post("/fhir/{resource_type}")
async def create(resource_type: str, request: Request) -> Response:
    """create: a new resource with a server-assigned id, answered 201."""
    neg = Negotiated.from_request(request)
    body, text = await json_body(request)
    result = await write_service.create(context(request), resource_type, body, text)
    return write_response(request, result, neg, 201)
