"""batch and transaction: ``POST /fhir`` with a Bundle."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_server.api.deps import base_url, context
from fhir_server.errors import BadRequest
from fhir_server.http.body import parse_json_exact, read_limited
from fhir_server.http.headers import prefer_return
from fhir_server.http.negotiation import check_body_media_type
from fhir_server.http.responses import Negotiated, fhir_response
from fhir_server.observability import note_bundle_type
from fhir_server.service import bundle as bundle_service

router = APIRouter()


@router.post("/fhir")
@router.post("/fhir/", include_in_schema=False)
async def process_bundle(request: Request) -> Response:
    """A batch or transaction Bundle: 200 with the response Bundle."""
    neg = Negotiated.from_request(request)
    ctx = context(request)
    check_body_media_type(request.headers.get("content-type"))
    raw = await read_limited(request.stream(), request.headers.get("content-length"),
                             ctx.settings.max_body_bytes)
    bundle = parse_json_exact(raw, ctx.settings.max_json_depth)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base takes a batch or transaction Bundle")
    prefer = prefer_return(request.headers.get("prefer"))
    kind = bundle.get("type")
    note_bundle_type(kind)
    if kind == "transaction":
        result = await bundle_service.transaction(ctx, bundle, base_url(request), prefer)
    elif kind == "batch":
        result = await bundle_service.batch(ctx, bundle, base_url(request), prefer)
    else:
        raise BadRequest(f"Bundle.type must be batch or transaction, not {kind!r}")
    return fhir_response(result, neg)
