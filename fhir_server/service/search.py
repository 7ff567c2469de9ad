"""search-type and search-system: parse, compile, page by keyset, add includes."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from fhir_server.errors import BadRequest
from fhir_server.search.base import Fragment, SearchContext
from fhir_server.search.compile import Query
from fhir_server.search.hashing import param_key
from fhir_server.search.parse import Include, SearchRequest
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import SearchRow, Session

#: How many times ``:iterate`` includes follow references from included resources.
ITERATE_DEPTH = 3


@dataclass
class SearchResult:
    """One page of a search with what the Bundle needs."""

    request: SearchRequest
    matches: list[SearchRow]
    includes: list[SearchRow] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    previous_cursor: str | None = None
    warnings: list[str] = field(default_factory=list)


def _encode(values: Sequence[Any], backwards: bool) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, Decimal):
            return str(v)
        return v

    raw = orjson.dumps({"k": [plain(v) for v in values], "b": backwards})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> tuple[list[Any], bool]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        keys, backwards = data["k"], bool(data["b"])
        if not isinstance(keys, list) or not keys or not isinstance(keys[-1], int):
            raise ValueError("bad cursor")
        return keys, backwards
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise BadRequest(f"_cursor {token!r} is not a valid paging cursor") from None


def parse(ctx: ServiceContext, resource_types: Sequence[str],
          pairs: Sequence[tuple[str, str]], strict: bool) -> SearchRequest:
    """Parse a search; unknown types are NotFound, bad values BadRequest."""
    for rtype in resource_types:
        ctx.check_type(rtype)
    return ctx.search.parser.parse(resource_types, pairs, strict)


def compile_request(ctx: ServiceContext, request: SearchRequest, sctx: SearchContext,
                    extra: Sequence[Fragment] = ()) -> Query:
    """The compiled query of a parsed request (plus extra conditions, e.g. compartment)."""
    return ctx.search.compiler.compile(request, sctx, extra)


async def run(ctx: ServiceContext, request: SearchRequest, sctx: SearchContext,
              extra: Sequence[Fragment] = (), session: Session | None = None) -> SearchResult:
    """Run a parsed search: one page of matches, the total asked for, and includes."""
    store = session or ctx.repository
    settings = ctx.settings
    query = compile_request(ctx, request, sctx, extra)
    count = settings.default_page_size if request.count is None else request.count
    if count > settings.max_page_size:
        count = settings.max_page_size
        # The self link shows the page size that was applied.
        request.applied[:] = [("_count", str(count)) if name == "_count" else (name, value)
                              for name, value in request.applied]
    result = SearchResult(request, [])
    if request.summary == "count":
        result.total = await store.search_total(query)
        return result
    cursor: list[Any] | None = None
    backwards = False
    if request.cursor:
        cursor, backwards = _decode(request.cursor)
        if len(cursor) != len(query.sort) + 1:
            raise BadRequest("_cursor does not belong to this search")
    rows = await store.search_page(query, count + 1, cursor, backwards)
    more = len(rows) > count
    rows = rows[:count]
    if backwards:
        rows.reverse()
    result.matches = [row for row, _ in rows]
    if rows:
        first = _encode([*rows[0][1], rows[0][0].rid], True)
        last = _encode([*rows[-1][1], rows[-1][0].rid], False)
        if backwards:
            # Paging back: there is a later page (we came from it); an earlier one if more.
            result.next_cursor = last
            result.previous_cursor = first if more else None
        else:
            result.next_cursor = last if more else None
            result.previous_cursor = first if cursor is not None else None
    if request.total == "accurate":
        result.total = await store.search_total(query)
    elif request.total == "estimate":
        result.total = await store.search_estimate(query)
    if request.includes and result.matches:
        await _includes(ctx, store, request.includes, result)
    return result


def _reference_params(ctx: ServiceContext, source: str, code: str) -> list[int]:
    if code == "*":
        return [p.p for p in ctx.search.registry.params(source).values()
                if p.type == "reference"]
    return [param_key(source, code)]


async def _includes(ctx: ServiceContext, store: Session, includes: Sequence[Include],
                    result: SearchResult) -> None:
    limit = ctx.settings.max_includes
    seen = {row.rid for row in result.matches}
    frontier = list(result.matches)
    for depth in range(ITERATE_DEPTH + 1):
        added: list[SearchRow] = []
        for inc in includes:
            if depth > 0 and not inc.iterate:
                continue
            remaining = limit - len(result.includes) - len(added)
            if remaining <= 0:
                result.warnings.append(
                    f"included resources were limited to {limit}; narrow the search")
                break
            found = await _one_include(ctx, store, inc, frontier, remaining + len(seen))
            for row in found:
                if row.rid not in seen:
                    seen.add(row.rid)
                    added.append(row)
        result.includes += added[: max(0, limit - len(result.includes))]
        if not added:
            break
        frontier = added


async def _one_include(ctx: ServiceContext, store: Session, inc: Include,
                       frontier: Sequence[SearchRow], limit: int) -> list[SearchRow]:
    by_type: dict[str, list[SearchRow]] = {}
    for row in frontier:
        by_type.setdefault(row.version.resource_type, []).append(row)
    found: list[SearchRow] = []
    if not inc.reverse:
        sources = list(by_type) if inc.source_type == "*" else [inc.source_type]
        for source in sources:
            rows = by_type.get(source, [])
            p_values = _reference_params(ctx, source, inc.param_code)
            found += await store.include([r.rid for r in rows], p_values, inc.target_type,
                                         limit)
        return found
    sources = list(ctx.search.registry.resource_types) if inc.source_type == "*" else [
        inc.source_type]
    targets = [(r.version.resource_type, r.version.id) for r in frontier]
    p_values = [p for s in sources for p in _reference_params(ctx, s, inc.param_code)]
    return await store.revinclude(targets, p_values, limit)


def search_context(ctx: ServiceContext, base_url: str) -> SearchContext:
    """The SearchContext of one request (base URL for local references, clock)."""
    from datetime import UTC

    return replace(ctx.search.context, base_url=base_url, now=datetime.now(UTC))
