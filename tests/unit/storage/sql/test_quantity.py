"""The SQL of quantity searches on idx_quantity (no database)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from psycopg import sql

from fhir_server.search.base import ParseContext
from fhir_server.search.quantity import CURRENCY_SYSTEM, QUANTITY
from fhir_server.storage.sql.kinds import SQL_TYPES
from fhir_server.storage.sql.quantity import QUANTITY as QUANTITY_SQL

CTX = ParseContext()
A = sql.Identifier("a")
UCUM = "http://unitsofmeasure.org"


def _pred(*raw: str) -> tuple[str, list[Any]]:
    typed = [QUANTITY.parse(4, None, v, CTX) for v in raw]
    query, params = QUANTITY_SQL.predicate(4, None, typed, A)
    return query.as_string(None), params


def test_table() -> None:
    assert QUANTITY_SQL.table == "idx_quantity"
    assert SQL_TYPES["quantity"] is QUANTITY_SQL


def test_predicate_forms() -> None:
    text, params = _pred("5.4")
    assert params == [4, Decimal("5.35"), Decimal("5.45")]
    assert "system" not in text and "code" not in text
    text, params = _pred(f"5.4|{UCUM}|mg")
    assert params == [4, Decimal("5.35"), Decimal("5.45"), UCUM, "mg"]
    assert '"a"."unit"' not in text
    text, params = _pred("5.4||mg")
    assert params == [4, Decimal("5.35"), Decimal("5.45"), "mg", "mg"]
    assert '"a"."code" = %s OR "a"."unit" = %s' in text
    text, params = _pred("||mg")
    assert params == [4, "mg", "mg"]
    text, params = _pred(f"|{UCUM}|")
    assert (text, params) == ('("a".p = %s AND ("a"."system" = %s))', [4, UCUM])
    text, params = _pred("gt5|urn:iso:std:iso:4217|EUR")
    assert params == [4, Decimal("5"), CURRENCY_SYSTEM, "EUR"]
    assert text.count("%s") == len(params)


def test_full_shape() -> None:
    assert _pred(f"gt5.4|{UCUM}|mg")[0] == (
        '("a".p = %s AND ("a"."high" > %s::numeric AND "a"."system" = %s'
        ' AND "a"."code" = %s))')


def test_several_values_are_or_ed() -> None:
    text, params = _pred("5.4||mg", "ap1")
    assert text.count(" OR ") == 2  # code or unit, then the second value
    assert text.count("%s") == len(params) == 7  # p, 2 + 2 for 5.4||mg, 2 for ap1


def test_sort_key() -> None:
    assert QUANTITY_SQL.sort_key(A, False).as_string(None) == 'min("a"."low")'
    assert QUANTITY_SQL.sort_key(A, True).as_string(None) == 'max("a"."high")'
