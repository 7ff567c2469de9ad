"""The SQL of date searches on ranges [low, high) (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql

from fhir_server.search.base import ParseContext
from fhir_server.search.date import DATE, DateValue
from fhir_server.storage.sql.date import DATE as DATE_SQL
from fhir_server.storage.sql.date import date_condition
from fhir_server.storage.sql.kinds import SQL_TYPES

CTX = ParseContext(now=datetime(2025, 1, 1, tzinfo=UTC))
A = sql.Identifier("a")


def d(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _pred(*values: str) -> tuple[str, list[Any]]:
    typed = [DATE.parse(3, None, v, CTX) for v in values]
    query, params = DATE_SQL.predicate(3, None, typed, A)
    return query.as_string(None), params


def _params(value: str) -> list[Any]:
    return _pred(value)[1]


def test_table() -> None:
    assert DATE_SQL.table == "idx_date"
    assert SQL_TYPES["date"] is DATE_SQL


def test_predicate_parameters_by_prefix() -> None:
    s, e = d(2020, 1, 1).isoformat(), d(2021, 1, 1).isoformat()
    assert _params("2020") == [3, s, e]
    assert _params("eq2020") == [3, s, e]
    assert _params("ne2020") == [3, s, e]
    assert _params("gt2020") == [3, e]
    assert _params("lt2020") == [3, s]
    assert _params("ge2020") == [3, s]
    assert _params("le2020") == [3, e]
    assert _params("sa2020") == [3, e]
    assert _params("eb2020") == [3, s]


@pytest.mark.parametrize(("prefix", "condition"), [
    ("eq", '("a"."low" >= %s::timestamptz AND "a"."high" <= %s::timestamptz)'),
    ("ne", '("a"."low" < %s::timestamptz OR "a"."high" > %s::timestamptz)'),
    ("gt", '"a"."high" > %s::timestamptz'),
    ("lt", '"a"."low" < %s::timestamptz'),
    ("ge", '"a"."high" > %s::timestamptz'),
    ("le", '"a"."low" < %s::timestamptz'),
    ("sa", '"a"."low" >= %s::timestamptz'),
    ("eb", '"a"."high" <= %s::timestamptz'),
    ("ap", '("a"."low" < %s::timestamptz AND "a"."high" > %s::timestamptz)'),
])
def test_condition_by_prefix(prefix: str, condition: str) -> None:
    assert _pred(f"{prefix}2020")[0] == f'("a".p = %s AND {condition})'


def test_ap_parameters_are_the_widened_range() -> None:
    # 2015 is 10 years before CTX.now (2025-01-01): about one year either side.
    end, start = _params("ap2015")[1:]
    assert datetime.fromisoformat(str(start)) == d(2015, 1, 1) - timedelta(days=3653) / 10
    assert datetime.fromisoformat(str(end)) == d(2016, 1, 1) + timedelta(days=3288) / 10


def test_open_bounds_are_infinite() -> None:
    low, high = sql.SQL("lo"), sql.SQL("hi")
    assert date_condition(DateValue("eq", None, None), low, high)[1] == [
        "-infinity", "infinity"]
    assert _params("ge9999") == [3, d(9999, 1, 1).isoformat()]
    assert _params("gt9999") == [3, "infinity"]


def test_predicate_sql_shape() -> None:
    text, params = _pred("2020", "gt2021")
    assert text.startswith('("a".p = %s AND (')
    assert " OR " in text
    assert text.count("%s") == len(params)


def test_sort_key() -> None:
    assert DATE_SQL.sort_key(A, False).as_string(None) == 'min("a"."low")'
    assert DATE_SQL.sort_key(A, True).as_string(None) == 'max("a"."high")'
