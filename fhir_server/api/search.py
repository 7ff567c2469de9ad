"""search-type, search-system and compartment search, as ``searchset`` Bundles."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson

from fhir_server.api import explain
from fhir_server.api.common import query_string
from fhir_server.api.headers import prefer_handling
from fhir_server.api.messages import FhirRequest, FhirResponse, outcome
from fhir_server.errors import BadRequest, UnsupportedMediaType
from fhir_server.search.request import Compartment
from fhir_server.service import compartment as compartments
from fhir_server.service import search as search_service
from fhir_server.service import subsetting
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import SearchRow
from fhir_server.service.search import SearchResult

_FORM = "application/x-www-form-urlencoded"


def _entry(ctx: ServiceContext, base: str, row: SearchRow, mode: str,
           result: SearchResult) -> dict[str, Any]:
    version = row.version
    assert version.content is not None
    request = result.request
    if request.summary in ("true", "text", "data") or request.elements:
        resource: Any = orjson.loads(version.content)
        if request.summary in ("true", "text", "data"):
            resource = subsetting.summarize(resource, request.summary, ctx.definitions)
        if request.elements and mode == "match":
            resource = subsetting.select_elements(resource, request.elements,
                                                  ctx.definitions)
        # Back to JSON at once: a page's worth of parsed resources takes many times
        # the memory of their text.
        resource = orjson.Fragment(orjson.dumps(resource))
    else:
        resource = orjson.Fragment(version.content)
    return {"fullUrl": f"{base}/{version.resource_type}/{version.id}", "resource": resource,
            "search": {"mode": mode}}


def searchset(ctx: ServiceContext, base: str, path: str,
              result: SearchResult) -> dict[str, Any]:
    """The searchset Bundle of one page, with self/next/previous links."""
    applied = list(result.request.applied)
    url = f"{base}{path}"
    links = [{"relation": "self", "url": url + (f"?{query_string(applied)}" if applied else "")}]
    for relation, cursor in (("next", result.next_cursor),
                             ("previous", result.previous_cursor)):
        if cursor is not None:
            links.append({"relation": relation,
                          "url": f"{url}?{query_string([*applied, ('_cursor', cursor)])}"})
    out: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        out["total"] = result.total
    out["link"] = links
    entries = [_entry(ctx, base, row, "match", result) for row in result.matches]
    entries += [_entry(ctx, base, row, "include", result) for row in result.includes]
    notes = [f"parameter {name!r} was ignored: {why}" for name, why in result.request.ignored]
    notes += result.warnings
    issues = [outcome("warning", "not-supported", n)["issue"][0] for n in notes]
    issues += [outcome("information", "informational", n)["issue"][0]
               for n in result.information]
    if issues:
        entries.append({"resource": {"resourceType": "OperationOutcome", "issue": issues},
                        "search": {"mode": "outcome"}})
    if entries:
        out["entry"] = entries
    return out


def _pairs(request: FhirRequest) -> list[tuple[str, str]]:
    """Query parameters, plus a form body on ``POST _search``."""
    pairs = list(request.pairs)
    if request.method == "POST" and request.body is not None:
        media = (request.header("content-type") or "").split(";")[0].strip().lower()
        if media != _FORM:
            raise UnsupportedMediaType(f"POST _search takes {_FORM}, not {media or 'nothing'}")
        form = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        if any("\x00" in k or "\x00" in v for k, v in form):
            raise BadRequest("the form holds a NUL character (%00)")
        pairs += form
    return pairs


async def _search(request: FhirRequest, ctx: ServiceContext, types: list[str], path: str,
                  compartment: Compartment | None = None) -> FhirResponse:
    strict = prefer_handling(request.header("prefer")) == "strict"
    pairs = _pairs(request)
    explaining = explain.wanted(pairs, request.context)  # before anything runs
    parsed = search_service.parse(ctx, types, explain.without(pairs), strict)
    parsed.compartment = compartment
    if explaining:
        return FhirResponse(200, explain.parameters(await search_service.explain(ctx, parsed)))
    result = await search_service.run(ctx, parsed)
    return FhirResponse(200, searchset(ctx, ctx.base_url, path, result))


async def search_system(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """search-system: ``_type`` names the types (default: every type)."""
    named = [t for v in request.query_values("_type") for t in v.split(",") if t]
    return await _search(request, ctx, named or sorted(ctx.resource_types), "")


async def search_type(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """search-type."""
    rtype = request.params["resource_type"]
    return await _search(request, ctx, [rtype], f"/{rtype}")


async def search_compartment(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """Compartment search, e.g. ``/fhir/Patient/123/Encounter``."""
    owner, id, rtype = (request.params[k] for k in ("compartment", "id", "resource_type"))
    found = compartments.compartment(ctx, owner, id)
    ctx.check_type(rtype)
    compartments.check_member(found, rtype)
    return await _search(request, ctx, [rtype], f"/{owner}/{id}/{rtype}", found)


async def search_compartment_all(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """Every type in a compartment (http.html#search: ``/fhir/Patient/123/*``)."""
    owner, id = request.params["compartment"], request.params["id"]
    found = compartments.compartment(ctx, owner, id)
    named = [t for v in request.query_values("_type") for t in v.split(",") if t]
    types = named or compartments.member_types(ctx, owner)
    for rtype in types:
        ctx.check_type(rtype)
        compartments.check_member(found, rtype)
    return await _search(request, ctx, types, f"/{owner}/{id}/*", found)
