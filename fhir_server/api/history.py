"""history at system, type and instance level, as ``history`` Bundles."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server.api.common import query_string
from fhir_server.api.headers import etag, instant
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.service import history as history_service
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import HistoryPage, StoredVersion

_STATUS = {"POST": "201 Created", "DELETE": "204 No Content"}


def _entry(base: str, v: StoredVersion) -> dict[str, Any]:
    """One history entry: the version as stored plus how it was written."""
    method = v.method or "PUT"
    entry: dict[str, Any] = {"fullUrl": f"{base}/{v.resource_type}/{v.id}"}
    if v.content is not None:
        entry["resource"] = orjson.Fragment(v.content)
    url = v.resource_type if method == "POST" else f"{v.resource_type}/{v.id}"
    status = _STATUS.get(method) or (
        "201 Created" if v.version_id == 1 or v.recreated else "200 OK")
    entry["request"] = {"method": method, "url": url}
    entry["response"] = {
        "status": status,
        "etag": etag(v.version_id),
        "lastModified": instant(v.last_updated),
    }
    if method != "DELETE":
        entry["response"]["location"] = (
            f"{v.resource_type}/{v.id}/_history/{v.version_id}")
    return entry


def _bundle(request: FhirRequest, base: str, path: str, page: HistoryPage) -> dict[str, Any]:
    kept = [(k, v) for k, v in request.pairs
            if k in history_service.HISTORY_PARAMS or k in ("_format", "_pretty")]
    self_url = f"{base}{path}" + (f"?{query_string(kept)}" if kept else "")
    links = [{"relation": "self", "url": self_url}]
    if page.next_cursor is not None:
        params = [(k, v) for k, v in kept if k != "_cursor"]
        params.append(("_cursor", page.next_cursor))
        links.append({"relation": "next", "url": f"{base}{path}?{query_string(params)}"})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    bundle["entry"] = [_entry(base, v) for v in page.entries]
    return bundle


async def _history(request: FhirRequest, ctx: ServiceContext, path: str,
                   resource_type: str | None, id: str | None) -> FhirResponse:
    params = dict(request.pairs)  # the last of repeated parameters wins
    query = history_service.parse_query(ctx, params, resource_type, id)
    page = await history_service.history(ctx, query)
    return FhirResponse(200, _bundle(request, ctx.base_url, path, page))


async def history_system(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """history of every resource."""
    return await _history(request, ctx, "/_history", None, None)


async def history_type(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """history of every resource of one type."""
    rtype = request.params["resource_type"]
    return await _history(request, ctx, f"/{rtype}/_history", rtype, None)


async def history_instance(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """history of one resource."""
    rtype, id = request.params["resource_type"], request.params["id"]
    return await _history(request, ctx, f"/{rtype}/{id}/_history", rtype, id)
