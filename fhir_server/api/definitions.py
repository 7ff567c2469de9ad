"""The OperationDefinitions of this server's own operations, generated from the route
table (``OperationDefinition/[name]``); other ids are read from storage as usual."""

from __future__ import annotations

from typing import Any

from fhir_server.api import instance
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.router import Operation, Route
from fhir_server.service.context import ServiceContext


def operation_definition(operation: Operation, routes: list[Route],
                         base: str) -> dict[str, Any]:
    """An R4 OperationDefinition for ``operation``, as the routes that run it offer it."""
    levels = {r.level for r in routes}
    typed = [r.resource_type or "Resource" for r in routes if r.level in ("type", "instance")]
    types = sorted({"Resource"} if "Resource" in typed else set(typed))
    definition: dict[str, Any] = {
        "resourceType": "OperationDefinition", "id": operation.name,
        "url": operation_url(operation, base), "name": operation.name.capitalize(),
        "status": "active", "kind": "operation", "description": operation.documentation,
        "affectsState": operation.affects_state, "code": operation.name,
        "system": "system" in levels, "type": "type" in levels,
        "instance": "instance" in levels,
    }
    if types:
        definition["resource"] = types
    if operation.parameters:
        definition["parameter"] = [
            {"name": p.name, "use": p.use, "min": p.min, "max": p.max, "type": p.type,
             **({"documentation": p.documentation} if p.documentation else {})}
            for p in operation.parameters]
    return definition


def operation_url(operation: Operation, base: str) -> str:
    """The canonical URL of an operation's definition: the specification's, or ours."""
    if "://" in operation.definition:
        return operation.definition
    return f"{base}/{operation.definition}"


def own_operations(routes: tuple[Route, ...]) -> dict[str, tuple[Operation, list[Route]]]:
    """This server's own operations (not the specification's) by name, with their routes."""
    out: dict[str, tuple[Operation, list[Route]]] = {}
    for route in routes:
        op = route.operation
        if op is not None and "://" not in op.definition:
            out.setdefault(op.name, (op, []))[1].append(route)
    return out


async def read_definition(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """read of an OperationDefinition: ours from the route table, others from storage."""
    assert request.router is not None
    own = own_operations(request.router.routes).get(request.params["id"])
    if own is None:
        request.params["resource_type"] = "OperationDefinition"
        return await instance.read(request, ctx)
    return FhirResponse(200, operation_definition(own[0], own[1], ctx.base_url))
