"""MAX_RESPONSE_BYTES in a search: the budget of a page, the cut and how it is said."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fhir_server.search.request import SearchRequest
from fhir_server.service import search as search_service
from fhir_server.service.repository import SearchPage, SearchRow, StoredVersion
from fhir_server.service.search import BUNDLE_BYTES, ENTRY_BYTES, Budget
from fhir_server.settings import Settings

BASE = "http://localhost/fhir"


def _row(rid: int, size: int) -> SearchRow:
    return SearchRow(rid, StoredVersion("Basic", f"b{rid}", 1, datetime(2024, 1, 1, tzinfo=UTC),
                                        False, "x" * size))


class Context:
    """What service.search.run reads of a ServiceContext."""

    def __init__(self, store: Any, max_response_bytes: int) -> None:
        self.repository = store
        self.settings = Settings(max_response_bytes=max_response_bytes)
        self.base_url = BASE


class Store:
    """A stand-in storage answering one page and recording the budgets asked for."""

    def __init__(self, page: SearchPage) -> None:
        self.page = page
        self.asked: list[tuple[int, int | None]] = []

    async def search(self, request: SearchRequest, count: int,
                     max_bytes: int | None = None) -> SearchPage:
        self.asked.append((count, max_bytes))
        return self.page


def test_the_bundle_and_each_entry_are_counted_before_the_resources() -> None:
    request = SearchRequest(("Basic",), applied=[("_count", "10")])
    budget = Budget.of(Context(None, 100_000), request)  # type: ignore[arg-type]
    query = len("_count") + len("10") + 2
    assert budget.entry == ENTRY_BYTES + len(BASE)
    assert budget.free == 100_000 - BUNDLE_BYTES - 3 * (len(BASE) + query)
    assert budget.for_rows(10) == budget.free - 10 * budget.entry
    assert budget.for_rows(10_000) == 0  # a page then holds one match, the least


def test_spend_counts_what_fits_and_nothing_else() -> None:
    budget = Budget(1000, 100, 700)
    assert budget.spend(_row(1, 400)) is True
    assert budget.free == 200
    assert budget.spend(_row(2, 101)) is False
    assert budget.free == 200
    budget.charge([_row(3, 150), _row(4, 150)])
    assert budget.free == -300  # matches are on the page whatever their size


def test_a_page_cut_for_its_size_says_so_and_keeps_its_next_link() -> None:
    page = SearchPage([_row(1, 10), _row(2, 10)], next_cursor="c2", cut=True)
    store = Store(page)
    ctx = Context(store, 1_000_000)
    request = SearchRequest(("Basic",), count=5)
    result = asyncio.run(search_service.run(ctx, request))  # type: ignore[arg-type]
    assert store.asked == [(5, Budget.of(ctx, request).for_rows(5))]  # type: ignore[arg-type]
    assert result.next_cursor == "c2" and len(result.matches) == 2
    assert result.warnings == []
    assert result.information == [
        "this page holds 2 of the 5 matches asked for: the next would have brought the "
        "response past 1000000 bytes (MAX_RESPONSE_BYTES); the next link continues after "
        "the last one"]


def test_a_page_not_cut_says_nothing() -> None:
    store = Store(SearchPage([_row(1, 10)]))
    result = asyncio.run(search_service.run(
        Context(store, 1_000_000), SearchRequest(("Basic",))))  # type: ignore[arg-type]
    assert result.information == [] and result.warnings == []
