"""Composite index: rows from context nodes and components, and the SQL of value1$value2."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Node, SearchContext
from fhir_server.search.composite import COMPOSITE, composite_rows, token_keys
from fhir_server.search.hashing import h64

P = 5
A = sql.Identifier("a")
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def code_of(value: dict[str, Any]) -> list[Node]:
    """The ``code`` of a context value."""
    return [Node(value["code"], "CodeableConcept")] if "code" in value else []


def value_as(kind: str) -> Any:
    """An extractor of ``value[kind]``."""
    def extract(value: dict[str, Any]) -> list[Node]:
        key = f"value{kind}"
        return [Node(value[key], kind)] if key in value else []
    return extract


def render(values: list[str], kinds: tuple[str, ...]) -> tuple[str, list[object]]:
    """The predicate as SQL text and its parameters."""
    ctx = SearchContext(targets=kinds)
    fragment, params = COMPOSITE.predicate(P, None, values, A, ctx)
    return fragment.as_string(None), params


def obs(code: str, **value: Any) -> Node:
    """An Observation-like context node with a LOINC code."""
    return Node({"code": {"coding": [{"system": LOINC, "code": code}]}, **value},
                "Observation")


def test_token_keys() -> None:
    assert token_keys(P, [Node({"coding": [{"system": "s", "code": "a"}, {"code": "b"}]},
                               "CodeableConcept")]) == [
        h64(P, "s", "a"), h64(P, "a"), h64(P, "", "b"), h64(P, "b")]


def test_quantity_rows() -> None:
    node = obs("2823-3", valueQuantity={"value": 5.4, "unit": "mmol/l", "system": UCUM,
                                        "code": "mmol/L"})
    out = composite_rows(P, [node], [("token", code_of), ("quantity", value_as("Quantity"))],
                         SearchContext())
    units = [h64(P, "unit", "", "mmol/L"), h64(P, "unit", "", "mmol/l"),
             h64(P, "unit", UCUM, "mmol/L")]
    h1s = [h64(P, LOINC, "2823-3"), h64(P, "2823-3")]
    assert out == [(P, h1, u, "5.4", "5.4", None, None) for h1 in h1s for u in units]


def test_quantity_without_unit_and_comparator() -> None:
    node = obs("x", valueQuantity={"value": 3, "comparator": "<"})
    out = composite_rows(P, [node], [("token", code_of), ("quantity", value_as("Quantity"))],
                         SearchContext())
    assert {r[2:] for r in out} == {(None, "-Infinity", "3", None, None)}


def test_token_date_string_reference_uri_rows() -> None:
    cc = obs("a", valueCodeableConcept={"coding": [{"code": "pos"}]})
    rows = composite_rows(P, [cc], [("token", code_of),
                                    ("token", value_as("CodeableConcept"))], SearchContext())
    assert {r[2] for r in rows} == {h64(P, "", "pos"), h64(P, "pos")} and len(rows) == 4
    dated = obs("a", valueDateTime="2020-05")
    rows = composite_rows(P, [dated], [("token", code_of), ("date", value_as("DateTime"))],
                          SearchContext())
    assert rows[0][3:] == (None, None, "2020-05-01T00:00:00+00:00",
                           "2020-06-01T00:00:00+00:00")
    text = obs("a", valueString="Négatif")
    rows = composite_rows(P, [text], [("token", code_of), ("string", value_as("String"))],
                          SearchContext())
    assert rows[0][2] == h64(P, "string", "negatif")
    ref = Node({"code": {"coding": [{"code": "replaces"}]},
                "target": {"reference": "https://b/fhir/DocumentReference/9"}}, "X")
    rows = composite_rows(P, [ref], [("token", code_of),
                                     ("reference", lambda v: [Node(v["target"], "Reference")])],
                          SearchContext(base_url="https://b/fhir"))
    assert {r[2] for r in rows} == {h64(P, "ref", "DocumentReference/9"),
                                    h64(P, "ref-id", "9")}


def test_context_nodes_pair_only_their_own_values() -> None:
    comps = [obs("sys", valueQuantity={"value": 120}), obs("dia", valueQuantity={"value": 80})]
    rows = composite_rows(P, comps, [("token", code_of), ("quantity", value_as("Quantity"))],
                          SearchContext())
    assert {(r[1], r[3]) for r in rows} == {
        (h64(P, LOINC, "sys"), "120"), (h64(P, "sys"), "120"),
        (h64(P, LOINC, "dia"), "80"), (h64(P, "dia"), "80")}


def test_missing_component_and_unsupported_shapes_give_no_rows() -> None:
    comps = [("token", code_of), ("quantity", value_as("Quantity"))]
    assert composite_rows(P, [obs("a")], comps, SearchContext()) == []
    three = [*comps, ("quantity", value_as("Quantity"))]
    assert composite_rows(P, [obs("a", valueQuantity={"value": 1})], three,
                          SearchContext()) == []


def test_rows_is_not_the_entry_point() -> None:
    with pytest.raises(TypeError, match="composite_rows"):
        COMPOSITE.rows(P, [], SearchContext())


def test_token_pairs_predicate() -> None:
    text, params = render(["s|a$b", r"a\$x$|c"], ("token", "token"))
    assert text == ('"a"."p" = %s AND ("a"."h1", "a"."h2") IN (SELECT * FROM'
                    ' unnest(%s::bigint[], %s::bigint[]))')
    assert params == [P, [h64(P, "s", "a"), h64(P, "a$x")], [h64(P, "b"), h64(P, "", "c")]]


def test_quantity_predicate_with_prefix_and_unit() -> None:
    text, params = render([f"{LOINC}|2823-3$gt5.4|{UCUM}|mmol/L"], ("token", "quantity"))
    assert text == ('"a"."p" = %s AND ("a"."h1" = %s AND ("a"."high" > %s::numeric'
                    ' AND "a"."h2" = %s))')
    assert params[:2] == [P, h64(P, LOINC, "2823-3")]
    assert str(params[2]) == "5.4" and params[3] == h64(P, "unit", UCUM, "mmol/L")
    _, params = render(["x$5.4||mg"], ("token", "quantity"))
    assert params[-1] == h64(P, "unit", "", "mg")


def test_date_number_string_predicates() -> None:
    text, _ = render(["x$ge2020"], ("token", "date"))
    assert '"a"."dhigh" > %s::timestamptz' in text
    text, _ = render(["x$lt3", "y$2"], ("token", "number"))
    assert text.count('"a"."h1" = %s') == 2 and " OR " in text
    _, params = render(["x$NÉGATIF"], ("token", "string"))
    assert params[-1] == [h64(P, "string", "negatif")]


@pytest.mark.parametrize(("values", "kinds"), [
    (["a"], ("token", "token")),
    (["a$b$c"], ("token", "token")),
    (["s|$b"], ("token", "token")),
    (["a$xx5"], ("token", "quantity")),
    (["a$5|sys|"], ("token", "quantity")),
    (["a$2020-13"], ("token", "date")),
    (["a$1$2"], ("token", "number", "number")),
    (["a$b"], ()),
])
def test_rejects(values: list[str], kinds: tuple[str, ...]) -> None:
    with pytest.raises(BadRequest):
        render(values, kinds)


def test_modifiers_rejected() -> None:
    with pytest.raises(BadRequest):
        COMPOSITE.predicate(P, "not", ["a$b"], A, SearchContext(targets=("token", "token")))
