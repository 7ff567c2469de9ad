"""history at system, type and instance level, as ``history`` Bundles."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_server.api.deps import base_url, context
from fhir_server.http.headers import etag, instant
from fhir_server.http.responses import Negotiated, fhir_response, query_string
from fhir_server.service import history as history_service
from fhir_server.service.repository import HistoryPage, StoredVersion

router = APIRouter()

_STATUS = {"POST": "201 Created", "DELETE": "204 No Content"}


def _entry(base: str, v: StoredVersion) -> dict[str, Any]:
    """One history entry: the version as stored plus how it was written."""
    method = v.method or "PUT"
    entry: dict[str, Any] = {"fullUrl": f"{base}/{v.resource_type}/{v.id}"}
    if v.content is not None:
        entry["resource"] = orjson.Fragment(v.content)
    url = v.resource_type if method == "POST" else f"{v.resource_type}/{v.id}"
    status = _STATUS.get(method) or ("201 Created" if v.version_id == 1 else "200 OK")
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


def _bundle(request: Request, path: str, page: HistoryPage) -> dict[str, Any]:
    base = base_url(request)
    kept = [(k, v) for k, v in request.query_params.multi_items()
            if k in history_service.HISTORY_PARAMS or k in ("_format", "_pretty")]
    self_url = f"{base}{path}" + (f"?{query_string(kept)}" if kept else "")
    links = [{"relation": "self", "url": self_url}]
    if page.next_cursor is not None:
        params = [(k, v) for k, v in kept if k != "_cursor"]
        params.append(("_cursor", history_service.encode_cursor(page.next_cursor)))
        links.append({"relation": "next", "url": f"{base}{path}?{query_string(params)}"})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    bundle["entry"] = [_entry(base, v) for v in page.entries]
    return bundle


async def _history(request: Request, path: str, resource_type: str | None,
                   id: str | None) -> Response:
    neg = Negotiated.from_request(request)
    ctx = context(request)
    query = history_service.parse_query(ctx, request.query_params, resource_type, id)
    page = await history_service.history(ctx, query)
    return fhir_response(_bundle(request, path, page), neg)


@router.get("/fhir/_history")
async def history_system(request: Request) -> Response:
    """history of every resource."""
    return await _history(request, "/_history", None, None)


@router.get("/fhir/{resource_type}/_history")
async def history_type(resource_type: str, request: Request) -> Response:
    """history of every resource of one type."""
    return await _history(request, f"/{resource_type}/_history", resource_type, None)


@router.get("/fhir/{resource_type}/{id}/_history")
async def history_instance(resource_type: str, id: str, request: Request) -> Response:
    """history of one resource."""
    return await _history(request, f"/{resource_type}/{id}/_history", resource_type, id)
