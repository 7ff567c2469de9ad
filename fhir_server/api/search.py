"""search-type, search-system and compartment search, as ``searchset`` Bundles."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_server.api.deps import base_url, context
from fhir_server.errors import UnsupportedMediaType
from fhir_server.http.body import read_limited
from fhir_server.http.headers import prefer_handling
from fhir_server.http.responses import Negotiated, fhir_response, outcome, query_string
from fhir_server.service import search as search_service
from fhir_server.service import subsetting
from fhir_server.service.compartment import compartment_condition
from fhir_server.service.repository import SearchRow
from fhir_server.service.search import SearchResult

router = APIRouter()

_FORM = "application/x-www-form-urlencoded"


def _entry(request: Request, base: str, row: SearchRow, mode: str,
           result: SearchResult) -> dict[str, Any]:
    version = row.version
    assert version.content is not None
    if result.request.summary in ("true", "text", "data") or result.request.elements:
        resource: Any = orjson.loads(version.content)
        defs = context(request).definitions
        if result.request.summary in ("true", "text", "data"):
            resource = subsetting.summarize(resource, result.request.summary, defs)
        if result.request.elements and mode == "match":
            resource = subsetting.select_elements(resource, result.request.elements, defs)
    else:
        resource = orjson.Fragment(version.content)
    return {"fullUrl": f"{base}/{version.resource_type}/{version.id}", "resource": resource,
            "search": {"mode": mode}}


def bundle(request: Request, path: str, result: SearchResult) -> dict[str, Any]:
    """The searchset Bundle of one page, with self/next/previous links."""
    base = base_url(request)
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
    entries = [_entry(request, base, row, "match", result) for row in result.matches]
    entries += [_entry(request, base, row, "include", result) for row in result.includes]
    notes = [f"parameter {name!r} was ignored: {why}" for name, why in result.request.ignored]
    notes += result.warnings
    if notes:
        entries.append({"resource": {
            "resourceType": "OperationOutcome",
            "issue": [outcome("warning", "not-supported", n)["issue"][0] for n in notes]},
            "search": {"mode": "outcome"}})
    if entries:
        out["entry"] = entries
    return out


async def _pairs(request: Request) -> list[tuple[str, str]]:
    """Query parameters, plus a form body on ``POST _search``."""
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media != _FORM:
            raise UnsupportedMediaType(f"POST _search takes {_FORM}, not {media or 'nothing'}")
        raw = await read_limited(request.stream(), request.headers.get("content-length"),
                                 context(request).settings.max_body_bytes)
        pairs += parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return pairs


async def _search(request: Request, types: list[str], path: str,
                  compartment: tuple[str, str] | None = None) -> Response:
    neg = Negotiated.from_request(request)
    ctx = context(request)
    pairs = await _pairs(request)
    strict = prefer_handling(request.headers.get("prefer")) == "strict"
    parsed = search_service.parse(ctx, types, pairs, strict)
    sctx = search_service.search_context(ctx, base_url(request))
    extra = [compartment_condition(ctx, compartment[0], compartment[1], types[0])
             ] if compartment else []
    result = await search_service.run(ctx, parsed, sctx, extra)
    return fhir_response(bundle(request, path, result), neg)


@router.get("/fhir")
@router.get("/fhir/", include_in_schema=False)
@router.post("/fhir/_search")
async def search_system(request: Request) -> Response:
    """search-system: ``_type`` names the types (default: every type)."""
    ctx = context(request)
    named = [t for v in request.query_params.getlist("_type") for t in v.split(",") if t]
    types = named or sorted(ctx.resource_types)
    return await _search(request, types, "")


@router.get("/fhir/{resource_type}")
@router.post("/fhir/{resource_type}/_search")
async def search_type(resource_type: str, request: Request) -> Response:
    """search-type."""
    return await _search(request, [resource_type], f"/{resource_type}")


@router.get("/fhir/{compartment}/{id}/{resource_type}")
async def search_compartment(compartment: str, id: str, resource_type: str,
                             request: Request) -> Response:
    """Compartment search, e.g. ``/fhir/Patient/123/Encounter``."""
    return await _search(request, [resource_type], f"/{compartment}/{id}/{resource_type}",
                         (compartment, id))
