"""The SQL of composite value1$value2 searches on idx_composite (no database)."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from fhir_server.search.base import ParseContext
from fhir_server.search.composite import COMPOSITE
from fhir_server.search.hashing import h64
from fhir_server.storage.sql.composite import COMPOSITE as COMPOSITE_SQL
from fhir_server.storage.sql.kinds import SQL_TYPES

P = 5
A = sql.Identifier("a")
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def render(values: list[str], kinds: tuple[str, ...]) -> tuple[str, list[Any]]:
    """The predicate of the parsed values as SQL text and its parameters."""
    ctx = ParseContext(targets=kinds)
    typed = [COMPOSITE.parse(P, None, v, ctx) for v in values]
    fragment, params = COMPOSITE_SQL.predicate(P, None, typed, A)
    return fragment.as_string(None), params


def test_table() -> None:
    assert COMPOSITE_SQL.table == "idx_composite"
    assert SQL_TYPES["composite"] is COMPOSITE_SQL


def test_token_pairs_predicate() -> None:
    text, params = render(["s|a$b", r"a\$x$|c"], ("token", "token"))
    assert text == ('"a"."p" = %s AND ("a"."h1", "a"."h2") IN (SELECT * FROM'
                    ' unnest(%s::bigint[], %s::bigint[]))')
    assert params == [P, [h64(P, "s", "a"), h64(P, "a$x")], [h64(P, "b"), h64(P, "", "c")]]


def test_repeated_pairs_are_one() -> None:
    _, params = render(["a$b", "a$b"], ("token", "token"))
    assert params == [P, [h64(P, "a")], [h64(P, "b")]]


def test_quantity_predicate_with_prefix_and_unit() -> None:
    text, params = render([f"{LOINC}|2823-3$gt5.4|{UCUM}|mmol/L"], ("token", "quantity"))
    assert text == ('"a"."p" = %s AND ("a"."h1" = %s AND ("a"."high" > %s::numeric'
                    ' AND "a"."h2" = %s))')
    assert params[:2] == [P, h64(P, LOINC, "2823-3")]
    assert str(params[2]) == "5.4" and params[3] == h64(P, "unit", UCUM, "mmol/L")
    _, params = render(["x$5.4||mg"], ("token", "quantity"))
    assert params[-1] == h64(P, "unit", "", "mg")


def test_unit_only_quantity() -> None:
    assert render(["x$||mg"], ("token", "quantity")) == (
        '"a"."p" = %s AND ("a"."h1" = %s AND ("a"."h2" = %s))',
        [P, h64(P, "x"), h64(P, "unit", "", "mg")])


def test_date_number_string_predicates() -> None:
    text, _ = render(["x$ge2020"], ("token", "date"))
    assert '"a"."dhigh" > %s::timestamptz' in text
    text, _ = render(["x$lt3", "y$2"], ("token", "number"))
    assert text.count('"a"."h1" = %s') == 2 and " OR " in text
    _, params = render(["x$NÉGATIF"], ("token", "string"))
    assert params[-1] == [h64(P, "string", "negatif")]


def test_pairs_and_ranges_together() -> None:
    text, params = render(["x$lt3", "y$2"], ("token", "quantity"))
    assert text.count(" OR ") == 1
    assert text.count("%s") == len(params)


def test_sort_key() -> None:
    assert COMPOSITE_SQL.sort_key(A, False).as_string(None) == 'min("a"."h1")'
