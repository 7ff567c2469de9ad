"""capabilities: ``GET /fhir/metadata``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_server.api.deps import base_url, context
from fhir_server.http.responses import Negotiated, fhir_response
from fhir_server.service.capability import build_capability

router = APIRouter()


@router.get("/fhir/metadata")
async def metadata(request: Request) -> Response:
    """The CapabilityStatement (built once per worker, base URL from the first request)."""
    neg = Negotiated.from_request(request)
    state = request.app.state
    if getattr(state, "capability", None) is None:
        ctx = context(request)
        state.capability = build_capability(state.capability_dir, ctx.resource_types,
                                            base_url(request), ctx.search.registry)
    return fhir_response(state.capability, neg)
