"""``Patient/[id]/$everything``, GET (query) and POST (a Parameters body): a searchset
Bundle of the patient's record, paged with ``next`` links."""

from __future__ import annotations

from typing import Any

from fhir_server.api.common import resource_body
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.search import searchset
from fhir_server.errors import BadRequest
from fhir_server.search.parse import parse_count
from fhir_server.search.request import SearchRequest
from fhir_server.service import everything
from fhir_server.service.context import ServiceContext
from fhir_server.service.dates import parse_range
from fhir_server.service.search import SearchResult

#: the operation's parameters and their value[x] in a Parameters body
PARAMETERS = {"start": "valueDate", "end": "valueDate", "_since": "valueInstant",
              "_type": "valueCode", "_count": "valueInteger"}


def _from_parameters(resource: Any) -> list[tuple[str, str]]:
    """(name, value) pairs of a Parameters body, as a query would give them."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Parameters":
        raise BadRequest("POST $everything takes a Parameters resource")
    pairs: list[tuple[str, str]] = []
    for parameter in resource.get("parameter", []):
        name = parameter.get("name")
        if name not in PARAMETERS:
            raise BadRequest(f"$everything has no parameter {name!r}")
        value = next((v for k, v in parameter.items() if k.startswith("value")), None)
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise BadRequest(f"parameter {name!r} needs a value ({PARAMETERS[name]})")
        pairs.append((name, str(value)))
    return pairs


def _query(patient_id: str, pairs: list[tuple[str, str]]) -> everything.EverythingQuery:
    values: dict[str, str] = {}
    types: list[str] = []
    for name, value in pairs:
        if name == "_type":
            types += [t.strip() for t in value.split(",") if t.strip()]
        elif name in PARAMETERS or name == "_cursor":
            if name in values:
                raise BadRequest(f"$everything takes {name} once")
            values[name] = value
    for name in ("start", "end", "_since"):
        if name in values:
            try:
                parse_range(values[name])
            except ValueError as exc:
                raise BadRequest(f"{name}: {exc}") from None
    since = parse_range(values["_since"])[0] if "_since" in values else None
    count = parse_count(values["_count"]) if "_count" in values else None
    return everything.EverythingQuery(
        patient_id, values.get("start"), values.get("end"), since, tuple(types), count,
        values.get("_cursor"))


def _applied(query: everything.EverythingQuery, pairs: list[tuple[str, str]],
             count: int) -> list[tuple[str, str]]:
    """The parameters of the self link (and, with ``_cursor``, of the next one)."""
    kept = [(n, v) for n, v in pairs if n in PARAMETERS and n != "_count"]
    return [*kept, ("_count", str(count))]


async def everything_instance(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """Patient/[id]/$everything."""
    patient_id = request.params["id"]
    if request.method == "POST":
        pairs = _from_parameters(resource_body(request, ctx)[0])
        pairs += [(n, v) for n, v in request.pairs if n == "_cursor"]
    else:
        pairs = list(request.pairs)
    query = _query(patient_id, pairs)
    page = await everything.run(ctx, query)
    shell = SearchRequest(("Patient",), applied=_applied(query, pairs, page.count))
    result = SearchResult(shell, page.matches, page.includes, next_cursor=page.next_cursor,
                          warnings=page.warnings)
    return FhirResponse(200, searchset(ctx, ctx.base_url, f"/Patient/{patient_id}/$everything",
                                       result))
