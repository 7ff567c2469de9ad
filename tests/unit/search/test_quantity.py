"""Quantity index rows and quantity search values parsed, without a database."""

from __future__ import annotations

import pytest

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.number import parse_number
from fhir_server.search.quantity import (
    CURRENCY_SYSTEM,
    QUANTITY,
    QuantityValue,
    parse_quantity,
    split_quantity,
)

CTX = IndexContext()
PARSE = ParseContext()
UCUM = "http://unitsofmeasure.org"


def test_rows() -> None:
    nodes = [
        Node({"value": 5.4, "unit": "mg", "system": UCUM, "code": "mg"}, "Quantity"),
        Node({"value": 70, "unit": "years", "system": UCUM, "code": "a"}, "Age"),
        Node({"value": 12.5, "currency": "EUR"}, "Money"),
        Node({"value": 3, "unit": "tablets"}, "Quantity"),
        Node({"value": 5, "comparator": "<", "unit": "mg"}, "Quantity"),
        Node({"value": 5, "comparator": ">=", "unit": "mg"}, "Quantity"),
        Node({"low": {"value": 1, "unit": "mg", "system": UCUM, "code": "mg"},
              "high": {"value": 2, "unit": "mg", "system": UCUM, "code": "mg"}}, "Range"),
        Node({"high": {"value": 2, "unit": "mg"}}, "Range"),
        Node({"unit": "mg"}, "Quantity"),  # no value: nothing to search
        Node({}, "Range"),
        Node("5 mg", "string"),
    ]
    assert QUANTITY.rows(2, nodes, CTX) == [
        (2, UCUM, "mg", "mg", "5.4", "5.4"),
        (2, UCUM, "a", "years", "70", "70"),
        (2, CURRENCY_SYSTEM, "EUR", None, "12.5", "12.5"),
        (2, None, None, "tablets", "3", "3"),
        (2, None, None, "mg", "-Infinity", "5"),
        (2, None, None, "mg", "5", "Infinity"),
        (2, UCUM, "mg", "mg", "1", "2"),
        (2, None, None, "mg", "-Infinity", "2"),
    ]


@pytest.mark.parametrize(("raw", "expected"), [
    ("5.4", ("5.4", None, None)),
    ("5.4|http://unitsofmeasure.org|mg", ("5.4", UCUM, "mg")),
    ("le5.4||mg", ("le5.4", None, "mg")),
    ("5.4|urn:x|", ("5.4", "urn:x", None)),
    ("5.4|a\\|b|c\\\\d", ("5.4", "a|b", "c\\d")),
])
def test_split(raw: str, expected: tuple[str, str | None, str | None]) -> None:
    assert split_quantity(raw) == expected


@pytest.mark.parametrize("raw", ["5.4|mg", "5.4|a|b|c", "abc", "gt||mg", "", "||", "5,4||mg"])
def test_malformed_is_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest, match="quantity"):
        QUANTITY.parse(1, None, raw, PARSE)


@pytest.mark.parametrize("modifier", ["exact", "missingx", "not"])
def test_modifiers_are_rejected(modifier: str) -> None:
    assert frozenset() == QUANTITY.modifiers
    with pytest.raises(BadRequest, match=f":{modifier}"):
        QUANTITY.parse(1, modifier, "5", PARSE)


def test_search_value_forms() -> None:
    n = parse_number("5.4")
    assert QUANTITY.parse(4, None, "5.4", PARSE) == QuantityValue("eq", n, None, None)
    assert QUANTITY.parse(4, None, f"5.4|{UCUM}|mg", PARSE) == QuantityValue(
        "eq", n, UCUM, "mg")
    assert QUANTITY.parse(4, None, "5.4||mg", PARSE) == QuantityValue("eq", n, None, "mg")
    assert QUANTITY.parse(4, None, "||mg", PARSE) == QuantityValue(None, None, None, "mg")
    assert QUANTITY.parse(4, None, f"|{UCUM}|", PARSE) == QuantityValue(None, None, UCUM, None)
    assert QUANTITY.parse(4, None, "gt5|urn:iso:std:iso:4217|EUR", PARSE) == QuantityValue(
        "gt", parse_number("5"), CURRENCY_SYSTEM, "EUR")
    assert parse_quantity("le5.40e-3||g") == QuantityValue(
        "le", parse_number("5.40e-3"), None, "g")
