"""The SQL of date searches on ranges [low, high) (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql

from fhir_server.search.base import ParseContext
from fhir_server.search.date import DATE, DateValue
from fhir_server.storage.sql.date import DATE as DATE_SQL
from fhir_server.storage.sql.date import date_condition, overlap
from fhir_server.storage.sql.kinds import SQL_TYPES

SPAN = """tstzrange(least("a"."low", "a"."high"), greatest("a"."low", "a"."high"), '[]')"""
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
    # eq bounds a match on both sides: the span condition follows (see test_overlap_*)
    assert _params("2020") == [3, s, e, s, e]
    assert _params("eq2020") == [3, s, e, s, e]
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
    if prefix in ("eq", "ap"):
        condition = f"{condition} AND {SPAN} && tstzrange(%s::timestamptz, %s::timestamptz, '[]')"
    assert _pred(f"{prefix}2020")[0] == f'("a".p = %s AND {condition})'


def test_ap_parameters_are_the_widened_range() -> None:
    # 2015 is 10 years before CTX.now (2025-01-01): about one year either side.
    end, start, span_from, span_to = _params("ap2015")[1:]
    assert (span_from, span_to) == (start, end)
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


def _values(*raw: str) -> list[DateValue]:
    return [DATE.parse(3, None, v, CTX) for v in raw]


def _overlap(*raw: str) -> list[Any] | None:
    hint = overlap(_values(*raw), sql.SQL("lo"), sql.SQL("hi"))
    if hint is None:
        return None
    assert hint[0].as_string(None) == (
        "tstzrange(least(lo, hi), greatest(lo, hi), '[]')"
        " && tstzrange(%s::timestamptz, %s::timestamptz, '[]')")
    return hint[1]


def test_overlap_of_a_range_search_is_its_bounds() -> None:
    # ge..&lt..: the match ends after the first bound and starts before the second.
    assert _overlap("ge2020-05-01", "lt2020-05-08") == [
        d(2020, 5, 1).isoformat(), d(2020, 5, 8).isoformat()]
    # gt/le use the other end of their day; the tightest of repeated bounds wins.
    assert _overlap("gt2020-05-01", "ge2020-01-01", "le2020-05-08", "eb2021") == [
        d(2020, 5, 2).isoformat(), d(2020, 5, 9).isoformat()]
    assert _overlap("sa2020", "lt2022") == [d(2021, 1, 1).isoformat(),
                                            d(2022, 1, 1).isoformat()]


def test_overlap_needs_both_sides() -> None:
    assert _overlap("ge2020") is None
    assert _overlap("lt2020", "le2021") is None
    assert _overlap("ne2020", "ge2020") is None
    assert overlap([DateValue("eq", None, None)], sql.SQL("lo"), sql.SQL("hi")) is None


def test_overlap_of_contradictory_bounds_is_sorted() -> None:
    # ge2022&lt2020 matches only ranges covering [2020, 2022]: they overlap it.
    assert _overlap("ge2022", "lt2020") == [d(2020, 1, 1).isoformat(),
                                            d(2022, 1, 1).isoformat()]


def test_overlap_with_open_bounds() -> None:
    assert _overlap("gt9999", "lt2020") == [d(2020, 1, 1).isoformat(), "infinity"]


def test_range_predicate_ands_groups_with_their_overlap() -> None:
    groups = [_values("ge2020"), _values("lt2021", "lt2022")]
    text, params = DATE_SQL.range_predicate(3, groups, A)
    assert text.as_string(None) == (
        '("a".p = %s AND "a"."high" > %s::timestamptz AND ("a"."low" < %s::timestamptz'
        ' OR "a"."low" < %s::timestamptz))')
    assert len(params) == 4  # a group of several values gives no overlap
    text, params = DATE_SQL.range_predicate(3, [_values("ge2020"), _values("lt2021")], A)
    assert text.as_string(None).endswith(f" AND {SPAN} && tstzrange(%s::timestamptz,"
                                         " %s::timestamptz, '[]'))")
    assert params == [3, d(2020, 1, 1).isoformat(), d(2021, 1, 1).isoformat(),
                      d(2020, 1, 1).isoformat(), d(2021, 1, 1).isoformat()]
