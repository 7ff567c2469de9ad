"""The SQL of number searches on closed ranges [low, high] (no database)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from psycopg import sql

from fhir_server.search.base import ParseContext
from fhir_server.search.number import NUMBER
from fhir_server.storage.sql.kinds import SQL_TYPES
from fhir_server.storage.sql.number import NUMBER as NUMBER_SQL

CTX = ParseContext()
A = sql.Identifier("a")


def _pred(*values: str) -> tuple[str, list[Any]]:
    typed = [NUMBER.parse(9, None, v, CTX) for v in values]
    query, params = NUMBER_SQL.predicate(9, None, typed, A)
    return query.as_string(None), params


def _params(value: str) -> list[Any]:
    return _pred(value)[1]


def test_table() -> None:
    assert NUMBER_SQL.table == "idx_number"
    assert SQL_TYPES["number"] is NUMBER_SQL


def test_prefix_parameters() -> None:
    assert _params("100") == [9, Decimal("99.5"), Decimal("100.5")]
    assert _params("ne100") == [9, Decimal("99.5"), Decimal("100.5")]
    # Comparisons ignore the implicit precision ("treated as arbitrarily high precision").
    for prefix in ("gt", "lt", "ge", "le", "sa", "eb"):
        assert _params(f"{prefix}100") == [9, Decimal("100")]
    # ap: 10 % of the value, never narrower than its precision.
    assert _params("ap100") == [9, Decimal("110.0"), Decimal("90.0")]
    assert _params("ap0") == [9, Decimal("0.5"), Decimal("-0.5")]


@pytest.mark.parametrize(("prefix", "condition"), [
    ("eq", '("a"."low" >= %s::numeric AND "a"."high" < %s::numeric)'),
    ("ne", '("a"."low" < %s::numeric OR "a"."high" >= %s::numeric)'),
    ("gt", '"a"."high" > %s::numeric'),
    ("lt", '"a"."low" < %s::numeric'),
    ("ge", '"a"."high" >= %s::numeric'),
    ("le", '"a"."low" <= %s::numeric'),
    ("sa", '"a"."low" > %s::numeric'),
    ("eb", '"a"."high" < %s::numeric'),
    ("ap", '("a"."low" <= %s::numeric AND "a"."high" >= %s::numeric)'),
])
def test_condition_by_prefix(prefix: str, condition: str) -> None:
    assert _pred(f"{prefix}100")[0] == f'("a".p = %s AND {condition})'


def test_several_values_are_or_ed() -> None:
    text, params = _pred("1", "gt5")
    assert " OR " in text
    assert text.count("%s") == len(params) == 4


def test_sort_key() -> None:
    assert NUMBER_SQL.sort_key(A, False).as_string(None) == 'min("a"."low")'
    assert NUMBER_SQL.sort_key(A, True).as_string(None) == 'max("a"."high")'
