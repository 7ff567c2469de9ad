"""search-type, search-system and compartment search: parse, page, count, include."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fhir_server.search.registry import SearchParam
from fhir_server.search.request import Include, SearchRequest
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import QueryPlan, SearchRow, Store, content_bytes

#: How many times ``:iterate`` includes follow references from included resources.
ITERATE_DEPTH = 3
#: What a searchset adds around its entries, at most: type, total, the outcome entry,
#: and room for three links (self, next, previous) besides their query strings.
BUNDLE_BYTES = 8 * 1024
#: What one entry adds around its resource besides the base URL in its fullUrl: the
#: type and id, ``{"fullUrl":...,"resource":...,"search":{"mode":"include"}}``.
ENTRY_BYTES = 256


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
    #: notes that report no problem (a page cut short for its size)
    information: list[str] = field(default_factory=list)


@dataclass
class Budget:
    """The bytes of a searchset still free within ``MAX_RESPONSE_BYTES``."""

    limit: int
    entry: int
    free: int

    @classmethod
    def of(cls, ctx: ServiceContext, request: SearchRequest) -> Budget:
        """The budget of one response: what the Bundle around its entries takes is
        counted first (links repeat the query string)."""
        limit = ctx.settings.max_response_bytes
        query = sum(len(k) + len(v) + 2 for k, v in request.applied)
        return cls(limit, ENTRY_BYTES + len(ctx.base_url),
                   limit - BUNDLE_BYTES - 3 * (len(ctx.base_url) + query))

    def for_rows(self, count: int) -> int:
        """The bytes of stored JSON ``count`` entries may hold (never below zero: a page
        then holds one match, the least it may)."""
        return max(0, self.free - count * self.entry)

    def charge(self, rows: Sequence[SearchRow]) -> None:
        """Count entries that are on the page whatever their size (its matches)."""
        self.free -= sum(content_bytes(r.version.content) + self.entry for r in rows)

    def spend(self, row: SearchRow) -> bool:
        """Count one entry; False (counting nothing) if it does not fit."""
        size = content_bytes(row.version.content) + self.entry
        if size > self.free:
            return False
        self.free -= size
        return True


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


async def run(ctx: ServiceContext, request: SearchRequest,
              store: Store | None = None) -> SearchResult:
    """Run a parsed search (on ``ctx.repository`` unless another ``store`` is given):
    one page of matches, the total asked for, and includes."""
    store = store or ctx.repository
    count = page_size(ctx, request)
    result = SearchResult(request, [])
    if request.summary == "count":
        result.total = await store.count(request)
        return result
    budget = Budget.of(ctx, request)
    page = await store.search(request, count, budget.for_rows(count))
    result.matches = page.rows
    result.next_cursor, result.previous_cursor = page.next_cursor, page.previous_cursor
    budget.charge(page.rows)
    if page.cut:
        result.information.append(
            f"this page holds {len(page.rows)} of the {count} matches asked for: the next "
            f"would have brought the response past {budget.limit} bytes "
            "(MAX_RESPONSE_BYTES); the next link continues after the last one")
    alone = page.next_cursor is None and page.previous_cursor is None and not request.cursor
    if request.total == "accurate":
        result.total = len(page.rows) if alone else await store.count(request)
    elif request.total == "estimate":
        # Never below what is known: this page's matches (and one more with a next page).
        known = len(page.rows) + (1 if page.next_cursor is not None else 0)
        result.total = len(page.rows) if alone else max(known, await store.estimate(request))
    if request.includes and result.matches:
        await _includes(ctx, store, request.includes, result, budget)
    return result


async def explain(ctx: ServiceContext, request: SearchRequest) -> list[QueryPlan]:
    """Run a parsed search as ``run`` does, in a read-only transaction that is rolled
    back, and answer the statements it ran with the database's plans of them."""
    async with ctx.repository.explaining() as store:
        await run(ctx, request, store)
        return list(store.plans)


def _reference_params(ctx: ServiceContext, source: str, code: str) -> list[SearchParam]:
    params = ctx.search.registry.params(source)
    if code == "*":
        return [p for p in params.values() if p.type == "reference"]
    param = params.get(code)
    return [param] if param is not None else []


async def _includes(ctx: ServiceContext, store: Store, includes: Sequence[Include],
                    result: SearchResult, budget: Budget) -> None:
    limit = ctx.settings.max_includes
    seen = {row.rid for row in result.matches}
    # Rows already on the page may come back from the storage too: they take its byte
    # budget without taking the response's.
    seen_bytes = sum(content_bytes(row.version.content) for row in result.matches)
    frontier = list(result.matches)
    truncated = too_large = False
    for depth in range(ITERATE_DEPTH + 1):
        added: list[SearchRow] = []
        for inc in includes:
            if truncated or too_large:
                break
            if depth > 0 and not inc.iterate:
                continue
            remaining = limit - len(result.includes) - len(added)
            # One more than fits tells whether something was left out.
            found = await _one_include(ctx, store, inc, frontier, remaining + 1 + len(seen),
                                       max(0, budget.free) + seen_bytes)
            for row in found:
                if row.rid in seen:
                    continue
                if len(result.includes) + len(added) >= limit:
                    truncated = True
                    break
                if not budget.spend(row):
                    too_large = True
                    break
                seen.add(row.rid)
                seen_bytes += content_bytes(row.version.content)
                added.append(row)
        result.includes += added
        if not added or truncated or too_large:
            break
        frontier = added
    if truncated:
        result.warnings.append(f"included resources were limited to {limit} "
                               "(MAX_INCLUDES); narrow the search or page it")
    if too_large:
        result.warnings.append(
            f"included resources were cut short to keep the response within "
            f"{budget.limit} bytes (MAX_RESPONSE_BYTES); narrow the search or page it "
            "with a smaller _count")


async def _one_include(ctx: ServiceContext, store: Store, inc: Include,
                       frontier: Sequence[SearchRow], limit: int,
                       max_bytes: int) -> list[SearchRow]:
    by_type: dict[str, list[SearchRow]] = {}
    for row in frontier:
        by_type.setdefault(row.version.resource_type, []).append(row)
    found: list[SearchRow] = []
    if not inc.reverse:
        sources = list(by_type) if inc.source_type == "*" else [inc.source_type]
        for source in sources:
            rows = by_type.get(source, [])
            params = _reference_params(ctx, source, inc.param_code)
            found += await store.include(rows, params, inc.target_type, limit, max_bytes)
        return found
    sources = list(ctx.search.registry.resource_types) if inc.source_type == "*" else [
        inc.source_type]
    params = [p for s in sources for p in _reference_params(ctx, s, inc.param_code)]
    return await store.revinclude(frontier, params, limit, max_bytes)
