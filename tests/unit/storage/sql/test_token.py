"""The SQL of each token search form on idx_token (no database)."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from fhir_server.search.base import ParseContext
from fhir_server.search.hashing import h64
from fhir_server.search.token import TOKEN, TokenKeys
from fhir_server.storage.sql.kinds import SQL_TYPES
from fhir_server.storage.sql.token import TOKEN as TOKEN_SQL

P = 42
A = sql.Identifier("a")
CTX = ParseContext()


def render(modifier: str | None, values: list[str], ctx: ParseContext = CTX
           ) -> tuple[str, list[Any]]:
    """The predicate of the parsed values as SQL text and its parameters."""
    typed = [TOKEN.parse(P, modifier, v, ctx) for v in values]
    fragment, params = TOKEN_SQL.predicate(P, modifier, typed, A)
    return fragment.as_string(None), params


def test_table() -> None:
    assert TOKEN_SQL.table == "idx_token"
    assert SQL_TYPES["token"] is TOKEN_SQL


def test_single_code_predicate() -> None:
    assert render(None, ["x"]) == ('"a"."h_code" = %s', [h64(P, "x")])


def test_mixed_forms_group_by_column() -> None:
    text, params = render(None, ["x", "y", "s|x", "s|"])
    assert text == ('("a"."h_code" = ANY(%s::bigint[]) OR "a"."h_sys_code" = %s'
                    ' OR "a"."h_sys" = %s)')
    assert params == [[h64(P, "x"), h64(P, "y")], h64(P, "s", "x"), h64(P, "s")]


def test_repeated_values_are_one_key() -> None:
    assert render(None, ["x", "x"]) == ('"a"."h_code" = %s', [h64(P, "x")])


def test_long_or_list_is_one_array() -> None:
    values = [f"c{i}" for i in range(500)]
    text, params = render(None, values)
    assert text == '"a"."h_code" = ANY(%s::bigint[])'
    assert len(params) == 1 and len(params[0]) == 500


def test_not_is_the_positive_condition() -> None:
    assert render("not", ["x"]) == render(None, ["x"])


def test_text_is_a_prefix_of_normalized_display() -> None:
    assert render("text", ["Héad_%"]) == ('"a"."p" = %s AND "a"."display" LIKE %s',
                                          [P, "head\\_\\%%"])
    text, params = render("text", ["a", "b"])
    assert text == '"a"."p" = %s AND "a"."display" LIKE ANY(%s::text[])'
    assert params == [P, ["a%", "b%"]]


def test_of_type() -> None:
    assert render("of-type", ["v2|MR|123"]) == ('"a"."h_type_value" = %s',
                                                [h64(P, "v2", "MR", "123")])


def test_in_and_not_in() -> None:
    sets = {"http://vs/1": {("s", "a"), ("s", "b")}, "http://vs/empty": set()}
    ctx = ParseContext(expand_valueset=sets.get)
    text, params = render("in", ["http://vs/1"], ctx)
    assert text == '"a"."h_sys_code" = ANY(%s::bigint[])'
    assert sorted(params[0]) == sorted([h64(P, "s", "a"), h64(P, "s", "b"),
                                        h64(P, "", "a"), h64(P, "", "b")])  # |code too
    assert render("not-in", ["http://vs/1"], ctx) == (text, params)
    assert render("in", ["http://vs/empty"], ctx) == ('"a"."p" = %s AND false', [P])


def test_in_several_value_sets_is_their_union() -> None:
    text, params = TOKEN_SQL.predicate(P, "in", [TokenKeys((1, 2)), TokenKeys((2, 3))], A)
    assert text.as_string(None) == '"a"."h_sys_code" = ANY(%s::bigint[])'
    assert params == [[1, 2, 3]]
    assert TOKEN_SQL.predicate(P, "in", [TokenKeys((7,))], A)[1] == [7]


def test_sort_key() -> None:
    assert TOKEN_SQL.sort_key(A, False).as_string(None) == 'min("a"."code")'
    assert TOKEN_SQL.sort_key(A, True).as_string(None) == 'max("a"."code")'
