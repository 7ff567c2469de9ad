"""history at instance, type and system level: parameters and the page."""

from __future__ import annotations

from collections.abc import Mapping

from fhir_server.errors import BadRequest, NotFound
from fhir_server.search.parse import parse_count
from fhir_server.service.context import ServiceContext, valid_id
from fhir_server.service.dates import parse_range
from fhir_server.service.repository import HistoryPage, HistoryQuery

#: The parameters a history request understands (others are ignored).
HISTORY_PARAMS = ("_count", "_since", "_at", "_cursor")
#: What a history Bundle adds around its entries (type, total, self and next links
#: besides their query strings), and one entry around its resource besides the base URL
#: in its fullUrl (type and id thrice, ``request`` and ``response``).
BUNDLE_BYTES = 8 * 1024
ENTRY_BYTES = 512


def parse_query(ctx: ServiceContext, params: Mapping[str, str], resource_type: str | None,
                id: str | None) -> HistoryQuery:
    """Turn request parameters into a HistoryQuery; BadRequest on malformed values."""
    if resource_type is not None:
        ctx.check_type(resource_type)
    if id is not None and not valid_id(id):
        raise NotFound(f"{resource_type}/{id} is not known")
    since = at = None
    if "_since" in params:
        try:
            since = parse_range(params["_since"])[0]
        except ValueError as exc:
            raise BadRequest(f"_since: {exc}") from None
    if "_at" in params:
        try:
            at = parse_range(params["_at"])
        except ValueError as exc:
            raise BadRequest(f"_at: {exc}") from None
    settings = ctx.settings
    count = (settings.default_page_size if "_count" not in params
             else min(parse_count(params["_count"]), settings.max_page_size))
    query = sum(len(k) + len(v) + 2 for k, v in params.items())
    max_bytes = (settings.max_response_bytes - BUNDLE_BYTES - 2 * (len(ctx.base_url) + query)
                 - count * (ENTRY_BYTES + len(ctx.base_url)))
    return HistoryQuery(resource_type, id, count, since, at, params.get("_cursor"),
                        max(0, max_bytes))


async def history(ctx: ServiceContext, query: HistoryQuery) -> HistoryPage:
    """One page of history (cut short before its Bundle would pass MAX_RESPONSE_BYTES,
    its next link continuing after the last entry); instance history of an id never
    stored is NotFound."""
    page = await ctx.repository.history(query)
    if (query.id is not None and query.resource_type is not None and not page.entries
            and await ctx.repository.read(query.resource_type, query.id) is None):
        raise NotFound(f"{query.resource_type}/{query.id} is not known")
    return page
