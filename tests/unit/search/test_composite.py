"""Composite index: rows from context nodes and components, and value1$value2 parsed."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.composite import COMPOSITE, CompositeValue, composite_rows, token_keys
from fhir_server.search.date import parse_date_value
from fhir_server.search.hashing import h64
from fhir_server.search.number import NumberValue, parse_number

P = 5
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


def parse(raw: str, kinds: tuple[str, ...]) -> CompositeValue:
    """One composite search value of components ``kinds``."""
    return COMPOSITE.parse(P, None, raw, ParseContext(targets=kinds))


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
                         IndexContext())
    units = [h64(P, "unit", "", "mmol/L"), h64(P, "unit", "", "mmol/l"),
             h64(P, "unit", UCUM, "mmol/L")]
    h1s = [h64(P, LOINC, "2823-3"), h64(P, "2823-3")]
    assert out == [(P, h1, u, "5.4", "5.4", None, None) for h1 in h1s for u in units]


def test_quantity_without_unit_and_comparator() -> None:
    node = obs("x", valueQuantity={"value": 3, "comparator": "<"})
    out = composite_rows(P, [node], [("token", code_of), ("quantity", value_as("Quantity"))],
                         IndexContext())
    assert {r[2:] for r in out} == {(None, "-Infinity", "3", None, None)}


def test_token_date_string_reference_uri_rows() -> None:
    cc = obs("a", valueCodeableConcept={"coding": [{"code": "pos"}]})
    rows = composite_rows(P, [cc], [("token", code_of),
                                    ("token", value_as("CodeableConcept"))], IndexContext())
    assert {r[2] for r in rows} == {h64(P, "", "pos"), h64(P, "pos")} and len(rows) == 4
    dated = obs("a", valueDateTime="2020-05")
    rows = composite_rows(P, [dated], [("token", code_of), ("date", value_as("DateTime"))],
                          IndexContext())
    assert rows[0][3:] == (None, None, "2020-05-01T00:00:00+00:00",
                           "2020-06-01T00:00:00+00:00")
    text = obs("a", valueString="Négatif")
    rows = composite_rows(P, [text], [("token", code_of), ("string", value_as("String"))],
                          IndexContext())
    assert rows[0][2] == h64(P, "string", "negatif")
    ref = Node({"code": {"coding": [{"code": "replaces"}]},
                "target": {"reference": "https://b/fhir/DocumentReference/9"}}, "X")
    rows = composite_rows(P, [ref], [("token", code_of),
                                     ("reference", lambda v: [Node(v["target"], "Reference")])],
                          IndexContext(bases=("https://b/fhir",)))
    assert {r[2] for r in rows} == {h64(P, "ref", "DocumentReference/9"),
                                    h64(P, "ref-id", "9")}


def test_context_nodes_pair_only_their_own_values() -> None:
    comps = [obs("sys", valueQuantity={"value": 120}), obs("dia", valueQuantity={"value": 80})]
    rows = composite_rows(P, comps, [("token", code_of), ("quantity", value_as("Quantity"))],
                          IndexContext())
    assert {(r[1], r[3]) for r in rows} == {
        (h64(P, LOINC, "sys"), "120"), (h64(P, "sys"), "120"),
        (h64(P, LOINC, "dia"), "80"), (h64(P, "dia"), "80")}


def test_missing_component_and_unsupported_shapes_give_no_rows() -> None:
    comps = [("token", code_of), ("quantity", value_as("Quantity"))]
    assert composite_rows(P, [obs("a")], comps, IndexContext()) == []
    three = [*comps, ("quantity", value_as("Quantity"))]
    assert composite_rows(P, [obs("a", valueQuantity={"value": 1})], three,
                          IndexContext()) == []


def test_rows_is_not_the_entry_point() -> None:
    with pytest.raises(TypeError, match="composite_rows"):
        COMPOSITE.rows(P, [], IndexContext())


def test_token_pairs() -> None:
    assert parse("s|a$b", ("token", "token")) == CompositeValue(h64(P, "s", "a"), h64(P, "b"))
    assert parse(r"a\$x$|c", ("token", "token")) == CompositeValue(h64(P, "a$x"),
                                                                    h64(P, "", "c"))
    assert parse("a$b", ("token", "token")).paired


def test_quantity_with_prefix_and_unit() -> None:
    value = parse(f"{LOINC}|2823-3$gt5.4|{UCUM}|mmol/L", ("token", "quantity"))
    assert value == CompositeValue(h64(P, LOINC, "2823-3"), h64(P, "unit", UCUM, "mmol/L"),
                                   NumberValue("gt", parse_number("5.4")))
    assert not value.paired
    assert parse("x$5.4||mg", ("token", "quantity")).h2 == h64(P, "unit", "", "mg")
    assert parse("x$5.4", ("token", "quantity")) == CompositeValue(
        h64(P, "x"), None, NumberValue("eq", parse_number("5.4")))
    unit_only = parse("x$||mg", ("token", "quantity"))
    assert unit_only == CompositeValue(h64(P, "x"), h64(P, "unit", "", "mg"), unit_only=True)
    assert not unit_only.paired


def test_date_number_string_reference_uri() -> None:
    assert parse("x$ge2020", ("token", "date")) == CompositeValue(
        h64(P, "x"), date=parse_date_value("ge2020", None))
    assert parse("x$lt3", ("token", "number")) == CompositeValue(
        h64(P, "x"), number=NumberValue("lt", parse_number("3")))
    assert parse("x$NÉGATIF", ("token", "string")).h2 == h64(P, "string", "negatif")
    assert parse("x$DocumentReference/9", ("token", "reference")).h2 == h64(
        P, "ref", "DocumentReference/9")
    assert parse("x$http://a/b", ("token", "reference")).h2 == h64(P, "ref", "http://a/b")
    assert parse("x$http://a/b", ("token", "uri")).h2 == h64(P, "uri", "http://a/b")


def test_reference_second_component_by_id() -> None:
    rows = composite_rows(P, [Node({"code": {"coding": [{"code": "x"}]},
                                    "target": {"reference": "DocumentReference/9"}}, "X")],
                          [("token", code_of),
                           ("reference", lambda v: [Node(v["target"], "Reference")])],
                          IndexContext())
    assert h64(P, "ref-id", "9") in {r[2] for r in rows}
    assert parse("x$9", ("token", "reference")).h2 == h64(P, "ref-id", "9")


@pytest.mark.parametrize(("raw", "kinds"), [
    ("a", ("token", "token")),
    ("a$b$c", ("token", "token")),
    ("s|$b", ("token", "token")),
    ("a$xx5", ("token", "quantity")),
    ("a$5|sys|", ("token", "quantity")),
    ("a$2020-13", ("token", "date")),
    ("a$1$2", ("token", "number", "number")),
    ("a$b", ()),
    ("a$b", ("string", "token")),
    ("a$", ("token", "string")),
])
def test_rejects(raw: str, kinds: tuple[str, ...]) -> None:
    with pytest.raises(BadRequest):
        parse(raw, kinds)


def test_modifiers_rejected() -> None:
    assert frozenset() == COMPOSITE.modifiers
    with pytest.raises(BadRequest, match=":not"):
        COMPOSITE.parse(P, "not", "a$b", ParseContext(targets=("token", "token")))
