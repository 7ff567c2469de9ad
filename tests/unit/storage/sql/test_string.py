"""The SQL of string searches on idx_string (no database)."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from fhir_server.search.base import ParseContext
from fhir_server.search.string import STRING
from fhir_server.storage.sql.common import like_escape
from fhir_server.storage.sql.kinds import SQL_TYPES
from fhir_server.storage.sql.string import STRING as STRING_SQL

A = sql.Identifier("a")
CTX = ParseContext()


def _pred(modifier: str | None, *values: str) -> tuple[str, list[Any]]:
    typed = [STRING.parse(6, modifier, v, CTX) for v in values]
    query, params = STRING_SQL.predicate(6, modifier, typed, A)
    return query.as_string(None), params


def test_table() -> None:
    assert STRING_SQL.table == "idx_string"
    assert SQL_TYPES["string"] is STRING_SQL


def test_like_escape() -> None:
    assert like_escape(r"50%_a\b") == r"50\%\_a\\b"


def test_default_is_a_folded_prefix() -> None:
    text, params = _pred(None, "Zoë", "gt2020", "100%")
    assert params == [6, "zoe%", "gt2020%", "100%"]  # punctuation is a blank
    assert text == ('("a".p = %s AND ("a"."norm" LIKE %s OR "a"."norm" LIKE %s'
                    ' OR "a"."norm" LIKE %s))')


def test_exact_and_contains() -> None:
    assert _pred("exact", "Zoë") == (
        '("a".p = %s AND (("a"."exact" = %s AND "a"."exact" <> \'\')))', [6, "Zoë"])
    assert _pred("contains", "Zoë_") == ('("a".p = %s AND ("a"."norm" LIKE %s))',
                                         [6, "%zoe%"])


def test_search_escapes_are_removed() -> None:
    assert _pred("exact", r"a\|b\$c\\d")[1] == [6, "a|b$c\\d"]


def test_text_matches_word_starts() -> None:
    text, params = _pred("text", "Quiñones  carr")
    assert params == [6, "quinones%", "% quinones%", "carr%", "% carr%"]
    assert text == ('("a".p = %s AND (("a"."norm" LIKE %s OR "a"."norm" LIKE %s) AND'
                    ' ("a"."norm" LIKE %s OR "a"."norm" LIKE %s)))')
    assert text.count(" AND ") == 2


def test_text_words_split_on_punctuation() -> None:
    assert _pred("text", "a_b")[1] == [6, "a%", "% a%", "b%", "% b%"]


def test_sort_key() -> None:
    # whole values only: the rows of family name parts have no exact text
    assert STRING_SQL.sort_key(A, False).as_string(None) == (
        'min("a"."norm") FILTER (WHERE "a"."exact" <> \'\')')
    assert STRING_SQL.sort_key(A, True).as_string(None) == (
        'max("a"."norm") FILTER (WHERE "a"."exact" <> \'\')')
