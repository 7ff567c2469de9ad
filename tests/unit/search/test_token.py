"""Token index: rows from each data type and the SQL of each search form (no database)."""

from __future__ import annotations

import pytest
from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Node, SearchContext
from fhir_server.search.hashing import h64
from fhir_server.search.token import TOKEN, parse_token

P = 42
A = sql.Identifier("a")
CTX = SearchContext()


def rows(*nodes: Node) -> list[tuple[object, ...]]:
    """Token rows of ``nodes`` for parameter P."""
    return TOKEN.rows(P, list(nodes), CTX)


def render(modifier: str | None, values: list[str], ctx: SearchContext = CTX
           ) -> tuple[str, list[object]]:
    """The predicate as SQL text and its parameters."""
    fragment, params = TOKEN.predicate(P, modifier, values, A, ctx)
    return fragment.as_string(None), params


def test_columns_match_the_migration() -> None:
    assert [c for c, _ in TOKEN.columns] == [
        "h_code", "h_sys_code", "h_sys", "h_type_value", "system", "code", "display"]
    assert TOKEN.table == "idx_token" and TOKEN.name == "token"


def test_coding_row_hashes() -> None:
    (row,) = rows(Node({"system": "http://loinc.org", "code": "1-8", "display": "Héllo  X"},
                       "Coding"))
    assert row == (P, h64(P, "1-8"), h64(P, "http://loinc.org", "1-8"),
                   h64(P, "http://loinc.org"), None, "http://loinc.org", "1-8", "hello x")


def test_coding_without_system() -> None:
    (row,) = rows(Node({"code": "x"}, "Coding"))
    assert row[1:5] == (h64(P, "x"), h64(P, "", "x"), None, None)


def test_codeable_concept_each_coding_and_text() -> None:
    cc = {"coding": [{"system": "s", "code": "a"}, {"code": "b", "display": "Bee"}],
          "text": "Çafé"}
    out = rows(Node(cc, "CodeableConcept"))
    assert [(r[5], r[6], r[7]) for r in out] == [("s", "a", None), (None, "b", "bee"),
                                                  (None, None, "cafe")]
    assert out[2][1:5] == (None, None, None, None)


def test_identifier_with_types() -> None:
    ident = {"system": "urn:mrn", "value": "123",
             "type": {"coding": [{"system": "v2", "code": "MR"}, {"code": "XX"}],
                      "text": "Medical record"}}
    out = rows(Node(ident, "Identifier"))
    assert out[0][1:] == (h64(P, "123"), h64(P, "urn:mrn", "123"), h64(P, "urn:mrn"),
                          h64(P, "v2", "MR", "123"), "urn:mrn", "123", "medical record")
    assert out[1] == (P, None, None, None, h64(P, "", "XX", "123"), None, None, None)


def test_contact_point_boolean_and_primitives() -> None:
    out = rows(Node({"system": "phone", "value": "+1 555"}, "ContactPoint"),
               Node(True, "boolean"), Node(False, "boolean"), Node("final", "code"),
               Node("abc", "id"), Node("http://x", "uri"), Node("", "string"))
    assert [(r[5], r[6]) for r in out] == [(None, "+1 555"), (None, "true"), (None, "false"),
                                           (None, "final"), (None, "abc"), (None, "http://x")]
    assert all(r[3] is None for r in out)  # no system: h_sys NULL


def test_rows_are_deduplicated_and_odd_nodes_skipped() -> None:
    node = Node({"code": "x"}, "Coding")
    assert len(rows(node, node)) == 1
    assert rows(Node({"value": 3}, "Quantity"), Node(None, "code"), Node({}, "Coding")) == []


@pytest.mark.parametrize(("raw", "column", "key"), [
    ("x", "h_code", h64(P, "x")),
    ("s|x", "h_sys_code", h64(P, "s", "x")),
    ("|x", "h_sys_code", h64(P, "", "x")),
    ("s|", "h_sys", h64(P, "s")),
    (r"a\|b", "h_code", h64(P, "a|b")),
    (r"s|a\|b", "h_sys_code", h64(P, "s", "a|b")),
    (r"a\\b", "h_code", h64(P, "a\\b")),
])
def test_parse_token(raw: str, column: str, key: int) -> None:
    parsed = parse_token(P, raw)
    assert (parsed.column, parsed.key) == (column, key)


@pytest.mark.parametrize("raw", ["", "|", "a|b|c"])
def test_parse_token_rejects(raw: str) -> None:
    with pytest.raises(BadRequest):
        parse_token(P, raw)


def test_single_code_predicate() -> None:
    assert render(None, ["x"]) == ('"a"."h_code" = %s', [h64(P, "x")])


def test_mixed_forms_group_by_column() -> None:
    text, params = render(None, ["x", "y", "s|x", "s|"])
    assert text == ('("a"."h_code" = ANY(%s::bigint[]) OR "a"."h_sys_code" = %s'
                    ' OR "a"."h_sys" = %s)')
    assert params == [[h64(P, "x"), h64(P, "y")], h64(P, "s", "x"), h64(P, "s")]


def test_long_or_list_is_one_array() -> None:
    values = [f"c{i}" for i in range(500)]
    text, params = render(None, values)
    assert text == '"a"."h_code" = ANY(%s::bigint[])'
    assert len(params) == 1 and len(params[0]) == 500  # type: ignore[arg-type]


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
    for bad in ["MR|123", "v2||123", "v2|MR|", "a|b|c|d"]:
        with pytest.raises(BadRequest):
            render("of-type", [bad])


def test_in_and_not_in() -> None:
    sets = {"http://vs/1": {("s", "a"), ("s", "b")}, "http://vs/empty": set()}
    ctx = SearchContext(expand_valueset=sets.get)
    text, params = render("in", ["http://vs/1"], ctx)
    assert text == '"a"."h_sys_code" = ANY(%s::bigint[])'
    assert sorted(params[0]) == sorted([h64(P, "s", "a"), h64(P, "s", "b")])  # type: ignore
    assert render("not-in", ["http://vs/1"], ctx) == (text, params)
    assert render("in", ["http://vs/empty"], ctx) == ('"a"."p" = %s AND false', [P])
    with pytest.raises(BadRequest, match="value set not known"):
        render("in", ["http://vs/unknown"], ctx)
    with pytest.raises(BadRequest, match="value set not known"):
        render("in", ["http://vs/1"])  # no terminology at all


@pytest.mark.parametrize("modifier", ["above", "below", "exact", "contains"])
def test_unsupported_modifiers(modifier: str) -> None:
    with pytest.raises(BadRequest):
        render(modifier, ["x"])


def test_sort_key() -> None:
    assert TOKEN.sort_key(A, False).as_string(None) == 'min("a"."code")'
    assert TOKEN.sort_key(A, True).as_string(None) == 'max("a"."code")'
