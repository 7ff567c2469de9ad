"""history at instance, type and system level: parameters, paging cursor, query."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime

from fhir_server.errors import BadRequest, NotFound
from fhir_server.service.context import ServiceContext, valid_id
from fhir_server.service.dates import parse_range
from fhir_server.service.repository import HistoryPage, HistoryQuery

#: The parameters a history request understands (others are ignored).
HISTORY_PARAMS = ("_count", "_since", "_at", "_cursor")


def encode_cursor(cursor: tuple[datetime, int]) -> str:
    """An opaque, URL-safe token for a keyset position."""
    raw = f"{cursor[0].isoformat()}|{cursor[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, int]:
    """The keyset position in a token from :func:`encode_cursor`; BadRequest if forged."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        moment, _, hid = raw.partition("|")
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, int(hid)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(f"_cursor {token!r} is not a valid paging cursor") from None


def page_size(params: Mapping[str, str], default: int, maximum: int) -> int:
    """``_count`` bounded to ``[0, maximum]``; BadRequest when not a number."""
    raw = params.get("_count")
    if raw is None:
        return default
    try:
        count = int(raw)
    except ValueError:
        raise BadRequest(f"_count must be a whole number, not {raw!r}") from None
    if count < 0:
        raise BadRequest("_count must not be negative")
    return min(count, maximum)


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
    after = decode_cursor(params["_cursor"]) if "_cursor" in params else None
    count = page_size(params, ctx.settings.default_page_size, ctx.settings.max_page_size)
    return HistoryQuery(resource_type, id, count, since, at, after)


async def history(ctx: ServiceContext, query: HistoryQuery) -> HistoryPage:
    """One page of history; instance history of an id never stored is NotFound."""
    page = await ctx.repository.history(query)
    if (query.id is not None and query.resource_type is not None and not page.entries
            and await ctx.repository.read(query.resource_type, query.id) is None):
        raise NotFound(f"{query.resource_type}/{query.id} is not known")
    return page
