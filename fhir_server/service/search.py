"""search-type, search-system and compartment search: parse, page, count, include."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fhir_server.search.registry import SearchParam
from fhir_server.search.request import Include, SearchRequest
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import SearchRow, Store

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


def parse(ctx: ServiceContext, resource_types: Sequence[str],
          pairs: Sequence[tuple[str, str]], strict: bool) -> SearchRequest:
    """Parse a search; unknown types are NotFound, bad values BadRequest."""
    for rtype in resource_types:
        ctx.check_type(rtype)
    return ctx.search.parser.parse(resource_types, pairs, strict, ctx.parse_context())


def page_size(ctx: ServiceContext, request: SearchRequest) -> int:
    """The page size a request gets: its ``_count`` capped at ``MAX_PAGE_SIZE`` (and the
    self link then shows the size applied), else the default."""
    settings = ctx.settings
    count = settings.default_page_size if request.count is None else request.count
    if count > settings.max_page_size:
        count = settings.max_page_size
        request.applied[:] = [("_count", str(count)) if name == "_count" else (name, value)
                              for name, value in request.applied]
    return count


async def run(ctx: ServiceContext, request: SearchRequest) -> SearchResult:
    """Run a parsed search: one page of matches, the total asked for, and includes."""
    store = ctx.repository
    count = page_size(ctx, request)
    result = SearchResult(request, [])
    if request.summary == "count":
        result.total = await store.count(request)
        return result
    page = await store.search(request, count)
    result.matches = page.rows
    result.next_cursor, result.previous_cursor = page.next_cursor, page.previous_cursor
    alone = page.next_cursor is None and page.previous_cursor is None and not request.cursor
    if request.total == "accurate":
        result.total = len(page.rows) if alone else await store.count(request)
    elif request.total == "estimate":
        # Never below what is known: this page's matches (and one more with a next page).
        known = len(page.rows) + (1 if page.next_cursor is not None else 0)
        result.total = len(page.rows) if alone else max(known, await store.estimate(request))
    if request.includes and result.matches:
        await _includes(ctx, store, request.includes, result)
    return result


def _reference_params(ctx: ServiceContext, source: str, code: str) -> list[SearchParam]:
    params = ctx.search.registry.params(source)
    if code == "*":
        return [p for p in params.values() if p.type == "reference"]
    param = params.get(code)
    return [param] if param is not None else []


async def _includes(ctx: ServiceContext, store: Store, includes: Sequence[Include],
                    result: SearchResult) -> None:
    limit = ctx.settings.max_includes
    seen = {row.rid for row in result.matches}
    frontier = list(result.matches)
    truncated = False
    for depth in range(ITERATE_DEPTH + 1):
        added: list[SearchRow] = []
        for inc in includes:
            if truncated:
                break
            if depth > 0 and not inc.iterate:
                continue
            remaining = limit - len(result.includes) - len(added)
            # One more than fits tells whether something was left out.
            found = await _one_include(ctx, store, inc, frontier, remaining + 1 + len(seen))
            for row in found:
                if row.rid in seen:
                    continue
                if len(result.includes) + len(added) >= limit:
                    truncated = True
                    break
                seen.add(row.rid)
                added.append(row)
        result.includes += added
        if not added or truncated:
            break
        frontier = added
    if truncated:
        result.warnings.append(f"included resources were limited to {limit} "
                               "(MAX_INCLUDES); narrow the search or page it")


async def _one_include(ctx: ServiceContext, store: Store, inc: Include,
                       frontier: Sequence[SearchRow], limit: int) -> list[SearchRow]:
    by_type: dict[str, list[SearchRow]] = {}
    for row in frontier:
        by_type.setdefault(row.version.resource_type, []).append(row)
    found: list[SearchRow] = []
    if not inc.reverse:
        sources = list(by_type) if inc.source_type == "*" else [inc.source_type]
        for source in sources:
            rows = by_type.get(source, [])
            params = _reference_params(ctx, source, inc.param_code)
            found += await store.include(rows, params, inc.target_type, limit)
        return found
    sources = list(ctx.search.registry.resource_types) if inc.source_type == "*" else [
        inc.source_type]
    params = [p for s in sources for p in _reference_params(ctx, s, inc.param_code)]
    return await store.revinclude(frontier, params, limit)
