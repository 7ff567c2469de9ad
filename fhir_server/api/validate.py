"""``$validate`` at type and instance level: ``POST [type]/$validate`` with a Parameters
body (``resource``, ``mode``, ``profile``) or the bare resource, ``GET``/``POST
[type]/[id]/$validate`` (the stored resource, or the given one against it). The answer
is an OperationOutcome, 200 even when the resource is invalid (that is the answer);
only a request that cannot be answered is an error (400, 404, 410)."""

from __future__ import annotations

from typing import Any

from fhir_server.api.common import resource_body
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.errors import BadRequest
from fhir_server.service import validate
from fhir_server.service.context import ServiceContext

#: the operation's input parameters and the value[x] each may be given as
_VALUES = {"mode": ("valueCode", "valueString"),
           "profile": ("valueUri", "valueCanonical", "valueUrl", "valueString")}


def _wrapped(body: Any, resource_type: str) -> bool:
    """Whether a body is the operation's Parameters rather than the resource to check:
    any Parameters, but on ``Parameters/$validate`` only one with a ``resource`` part."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        return False
    if resource_type != "Parameters":
        return True
    parts = body.get("parameter")
    return isinstance(parts, list) and any(
        isinstance(p, dict) and p.get("name") == "resource" and "resource" in p
        for p in parts)


def _from_parameters(body: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a Parameters body by name (each at most once)."""
    parts = body.get("parameter", [])
    if not isinstance(parts, list):
        raise BadRequest("Parameters.parameter must be a list")
    out: dict[str, Any] = {}
    for part in parts:
        name = part.get("name") if isinstance(part, dict) else None
        if name not in ("resource", *_VALUES):
            raise BadRequest(f"$validate has no parameter {name!r} (resource, mode, "
                             "profile)")
        if name in out:
            raise BadRequest(f"$validate takes {name} once")
        if name == "resource":
            if "resource" not in part:
                raise BadRequest("the parameter 'resource' needs a resource")
            out[name] = part["resource"]
            continue
        value = next((part[k] for k in _VALUES[name] if k in part), None)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"the parameter {name!r} needs a value "
                             f"({' or '.join(_VALUES[name])})")
        out[name] = value
    return out


def _query(request: FhirRequest) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.pairs:
        if name in _VALUES and value:
            if name in out:
                raise BadRequest(f"$validate takes {name} once")
            out[name] = value
    return out


async def validate_type(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """POST [type]/$validate: the resource given, Parameters or bare."""
    return await _validate(request, ctx)


async def validate_instance(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """[type]/[id]/$validate, GET (query: the stored resource) and POST (a body)."""
    return await _validate(request, ctx)


async def _validate(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    resource_type = request.params["resource_type"]
    ctx.check_type(resource_type)
    given: dict[str, Any] = {}
    has_body = request.resource is not None or bool(request.body)
    if request.method == "POST" and has_body:
        body = resource_body(request, ctx)[0]
        given = _from_parameters(body) if _wrapped(body, resource_type) else {
            "resource": body}
    query = _query(request)
    for name, value in query.items():
        if name in given and given[name] != value:
            raise BadRequest(f"{name} is given twice, in the query and in the body")
        given[name] = value
    found = await validate.run(ctx, validate.Validation(
        resource_type, request.params.get("id"), given.get("resource"), given.get("mode"),
        given.get("profile"), request.context.scope))
    return FhirResponse(200, validate.outcome(resource_type, found))
