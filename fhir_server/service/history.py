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
    return HistoryQuery(resource_type, id, count, since, at, params.get("_cursor"))


async def history(ctx: ServiceContext, query: HistoryQuery) -> HistoryPage:
    """One page of history; instance history of an id never stored is NotFound."""
    page = await ctx.repository.history(query)
    if (query.id is not None and query.resource_type is not None and not page.entries
            and await ctx.repository.read(query.resource_type, query.id) is None):
        raise NotFound(f"{query.resource_type}/{query.id} is not known")
    return page
