"""The byte budget of a page's rows (storage.fetch.PageRows): what is kept, what is left."""

from __future__ import annotations

from fhir_server.storage.fetch import PageRows


def _rows(*sizes: int) -> list[tuple[int, str]]:
    return [(n, "x" * size) for n, size in enumerate(sizes)]


def test_rows_are_kept_until_one_would_pass_the_budget() -> None:
    page = PageRows(250, 1)
    assert page.take(_rows(100, 100, 100, 10)) is True
    assert [r[0] for r in page.rows] == [0, 1]
    assert page.left is not None and page.left[0] == 2


def test_a_row_of_exactly_the_rest_fits() -> None:
    page = PageRows(200, 1)
    assert page.take(_rows(100, 100)) is False
    assert len(page.rows) == 2 and page.left is None


def test_the_first_row_is_kept_however_large() -> None:
    page = PageRows(10, 1)
    assert page.take(_rows(1000, 1)) is True
    assert [r[0] for r in page.rows] == [0]
    assert page.left == (1, "x")


def test_batches_add_up_and_the_largest_row_is_known() -> None:
    page = PageRows(1000, 1)
    assert page.take(_rows(300, 50)) is False
    assert page.largest == 300
    assert page.take([(9, "y" * 700)]) is True
    assert len(page.rows) == 2 and page.left is not None and page.left[0] == 9


def test_sizes_are_utf8_bytes() -> None:
    page = PageRows(5, 1)
    assert page.take([(0, "é"), (1, "ééé")]) is True  # 2 bytes, then 6 more
    assert [r[0] for r in page.rows] == [0]
