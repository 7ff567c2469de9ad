"""The OperationDefinitions of the operations in the route table, generated from their
declarations (``OperationDefinition/[id]``, and found by ``OperationDefinition?url=``);
other ids are read from storage as usual, and a search finds the stored ones too."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server.api import instance, search
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.router import Operation, Route
from fhir_server.service.context import ServiceContext

#: search parameters the generated definitions are matched on (any other keeps them out)
_MATCHED = frozenset({"url", "_id", "code", "name", "status", "kind"})
#: result and format parameters, which do not select
_RESULT = frozenset({"_count", "_summary", "_elements", "_total", "_format", "_pretty",
                     "_sort"})


def operation_definition(operation: Operation, routes: list[Route],
                         base: str) -> dict[str, Any]:
    """An R4 OperationDefinition for ``operation``, as the routes that run it offer it."""
    levels = {r.level for r in routes}
    typed = [r.resource_type or "Resource" for r in routes if r.level in ("type", "instance")]
    types = sorted({"Resource"} if "Resource" in typed else set(typed))
    definition: dict[str, Any] = {
        "resourceType": "OperationDefinition", "id": operation.id,
        "url": operation_url(operation, base),
        # a name usable as an identifier: validate-code -> ValidateCode
        "name": "".join(p.capitalize() for p in operation.name.split("-")),
        "status": "active", "kind": "operation", "description": operation.documentation,
        "affectsState": operation.affects_state, "code": operation.name,
        "system": "system" in levels, "type": "type" in levels,
        "instance": "instance" in levels,
    }
    if types:
        definition["resource"] = types
    if operation.parameters:
        definition["parameter"] = [
            {"name": p.name, "use": p.use, "min": p.min, "max": p.max,
             **({"type": p.type} if p.type else {}),
             **({"documentation": p.documentation} if p.documentation else {})}
            for p in operation.parameters]
    return definition


def operation_url(operation: Operation, base: str) -> str:
    """The canonical URL of an operation's definition: the specification's, or ours."""
    if "://" in operation.definition:
        return operation.definition
    return f"{base}/{operation.definition}"


def own_operations(routes: tuple[Route, ...]) -> dict[str, tuple[Operation, list[Route]]]:
    """Every operation of the route table by the id of its OperationDefinition, with
    the routes that run it."""
    out: dict[str, tuple[Operation, list[Route]]] = {}
    for route in routes:
        op = route.operation
        if op is not None:
            out.setdefault(op.id, (op, []))[1].append(route)
    return out


async def read_definition(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """read of an OperationDefinition: ours from the route table, others from storage."""
    assert request.router is not None
    own = own_operations(request.router.routes).get(request.params["id"])
    if own is None:
        request.params["resource_type"] = "OperationDefinition"
        return await instance.read(request, ctx)
    return FhirResponse(200, operation_definition(own[0], own[1], ctx.base_url))


def _matches(definition: dict[str, Any], pairs: list[tuple[str, str]]) -> bool:
    for name, value in pairs:
        if name in _RESULT or not value:
            continue
        if name not in _MATCHED:
            return False
        key = "id" if name == "_id" else name
        wanted = [v.split("|")[0] if name == "url" else v for v in value.split(",")]
        have = str(definition.get(key, ""))
        if name == "name":
            if not any(have.lower().startswith(v.lower()) for v in wanted):
                return False
        elif have not in wanted:
            return False
    return True


async def search_definitions(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """search of OperationDefinitions: the stored ones, after (on the first page) the
    route table's that match ``url``, ``_id``, ``code``, ``name``, ``status``, ``kind``."""
    assert request.router is not None
    request.params["resource_type"] = "OperationDefinition"
    answer = await search.search_type(request, ctx)
    pairs = list(request.pairs)
    if any(name == "_cursor" for name, _ in pairs) or \
            any(n == "_summary" and v == "count" for n, v in pairs):
        return answer  # a later page, or a count: the stored ones only
    generated = [operation_definition(op, routes, ctx.base_url)
                 for op, routes in own_operations(request.router.routes).values()]
    found = [d for d in generated if _matches(d, pairs)]
    if not found:
        return answer
    bundle: dict[str, Any] = answer.body
    entries = [{"fullUrl": f"{ctx.base_url}/OperationDefinition/{d['id']}",
                "resource": orjson.Fragment(orjson.dumps(d)), "search": {"mode": "match"}}
               for d in found]
    bundle["entry"] = entries + bundle.get("entry", [])
    if "total" in bundle:
        bundle["total"] += len(found)
    return answer
