"""Type interactions: create (also conditional) and conditional update, patch, delete."""

from __future__ import annotations

from fhir_server.api.common import (
    criteria,
    deleted,
    if_match,
    patch_body,
    resource_body,
    written,
)
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.errors import BadRequest
from fhir_server.service import write as write_service
from fhir_server.service.context import ServiceContext

#: Query parameters every interaction takes (http.html#parameters).
_FORMAT_PARAMS = frozenset({"_format", "_pretty", "_summary", "_elements"})


async def create(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """create: 201 with a server-assigned id; ``If-None-Exist`` makes it conditional.

    Search criteria in the URL (``POST Patient?identifier=x``, what some clients send
    for get-or-create) are refused rather than ignored: R4 puts a create's condition in
    ``If-None-Exist`` only, and silently creating would make the duplicate the client
    meant to avoid."""
    named = sorted({k for k, _ in request.pairs} - _FORMAT_PARAMS)
    if named:
        raise BadRequest(
            f"create takes no search parameters in the URL ({', '.join(named)}); for a "
            f"conditional create send them in the If-None-Exist header "
            f"(If-None-Exist: {'&'.join(f'{k}={v}' for k, v in request.pairs)})")
    body, text = resource_body(request, ctx)
    result = await write_service.create(ctx, request.params["resource_type"], body, text,
                                        request.header("if-none-exist"),
                                        request.assigned_id)
    return written(request, result, 200 if result.outcome == "found" else 201)


async def conditional_update(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """Conditional update: ``PUT /Type?criteria``."""
    where = criteria(request)
    body, text = resource_body(request, ctx)
    result = await write_service.conditional_update(ctx, request.params["resource_type"],
                                                    where, body, text, if_match(request))
    return written(request, result, 201 if result.outcome == "created" else 200)


async def conditional_patch(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """Conditional patch: ``PATCH /Type?criteria`` patches the single match."""
    where = criteria(request)
    media, body = patch_body(request, ctx)
    result = await write_service.conditional_patch(ctx, request.params["resource_type"],
                                                   where, media, body, if_match(request))
    return written(request, result, 200)


async def conditional_delete(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """Conditional delete: ``DELETE /Type?criteria`` (one match at most)."""
    rtype = request.params["resource_type"]
    result = await write_service.conditional_delete(ctx, rtype, criteria(request))
    return deleted(request, result, rtype)
