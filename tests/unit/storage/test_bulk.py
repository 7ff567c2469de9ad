"""The COPY data of ``storage.bulk``: psycopg's own text format, columns in table order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from psycopg._copy_base import _format_row_text as python_format_row
from psycopg.adapt import Transformer

from fhir_server.storage import bulk

ROWS: list[tuple[Any, ...]] = [
    (-(2**63), 2**63 - 1, None, "tab\there", "new\nline\\back\r", True,
     Decimal("70.50"), Decimal("-Infinity"), "ünïcode"),
    (0, None, None, "", "\b\f\v", False, Decimal("1E+3"), Decimal("NaN"), "x"),
]


def test_rows_are_formatted_as_psycopg_formats_them() -> None:
    assert bulk._format_row is not None
    tx = Transformer()
    ours, theirs = bytearray(), bytearray()
    for row in ROWS:
        bulk._format_row((7, *row), tx, ours)
        python_format_row((7, *row), tx, theirs)
    assert bytes(ours) == bytes(theirs)


def test_rows_follow_the_table_columns_and_missing_ones_are_null() -> None:
    rows = [(1, "a", "b"), (2, "c", None)]
    assert bulk._ordered(("p", "x", "y"), ("p", "x", "y"), rows) is rows
    assert bulk._ordered(("y", "p", "z"), ("p", "x", "y"), rows) == [
        ("b", 1, None), (None, 2, None)]
