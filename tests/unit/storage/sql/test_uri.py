"""The SQL of exact, :below and :above uri searches on idx_uri (no database)."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from fhir_server.search.base import ParseContext
from fhir_server.search.uri import URI, segment_prefixes
from fhir_server.storage.sql.kinds import SQL_TYPES
from fhir_server.storage.sql.uri import URI as URI_SQL

P = 7
A = sql.Identifier("a")
CTX = ParseContext()


def render(modifier: str | None, values: list[str]) -> tuple[str, list[Any]]:
    """The predicate of the parsed values as SQL text and its parameters."""
    typed = [URI.parse(P, modifier, v, CTX) for v in values]
    fragment, params = URI_SQL.predicate(P, modifier, typed, A)
    return fragment.as_string(None), params


def test_table() -> None:
    assert URI_SQL.table == "idx_uri"
    assert SQL_TYPES["uri"] is URI_SQL


def test_exact() -> None:
    assert render(None, ["http://a"]) == ('"a"."p" = %s AND "a"."uri" = %s', [P, "http://a"])
    assert render(None, ["http://a", r"http://b\|1"]) == (
        '"a"."p" = %s AND "a"."uri" = ANY(%s::text[])', [P, ["http://a", "http://b|1"]])
    assert render(None, ["http://a", "http://a"]) == (
        '"a"."p" = %s AND "a"."uri" = %s', [P, "http://a"])


def test_below() -> None:
    text, params = render("below", ["http://a.org/fhir"])
    assert text == ('"a"."p" = %s AND ("a"."uri" = %s OR "a"."uri" LIKE %s'
                    ' OR "a"."uri" LIKE %s)')
    assert params == [P, "http://a.org/fhir", "http://a.org/fhir/%", "http://a.org/fhir|%"]
    assert render("below", ["http://a.org/q|1"]) == (
        '"a"."p" = %s AND ("a"."uri" = %s OR "a"."uri" LIKE %s)',
        [P, "http://a.org/q|1", "http://a.org/q|1.%"])
    text, params = render("below", ["http://a/_x", "http://b/"])
    assert text == ('"a"."p" = %s AND ("a"."uri" = ANY(%s::text[])'
                    ' OR "a"."uri" LIKE ANY(%s::text[]))')
    assert params == [P, ["http://a/_x", "http://b/"],
                      ["http://a/\\_x/%", "http://a/\\_x|%", "http://b/%", "http://b/|%"]]


def test_above() -> None:
    text, params = render("above", ["http://a.org/fhir/ValueSet/1"])
    assert text == '"a"."p" = %s AND "a"."uri" = ANY(%s::text[])'
    assert params == [P, segment_prefixes("http://a.org/fhir/ValueSet/1")]
    _, params = render("above", ["http://a.org/q|2.0"])
    assert params[1] == [*segment_prefixes("http://a.org/q"), "http://a.org/q|2.0"]


def test_sort_key() -> None:
    assert URI_SQL.sort_key(A, True).as_string(None) == 'max("a"."uri")'
    assert URI_SQL.sort_key(A, False).as_string(None) == 'min("a"."uri")'
