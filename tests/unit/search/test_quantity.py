"""Quantity index rows and predicates, without a database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Node, SearchContext
from fhir_server.search.quantity import CURRENCY_SYSTEM, QUANTITY, split_quantity

CTX = SearchContext()
A = sql.Identifier("a")
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
        QUANTITY.predicate(1, None, [raw], A, CTX)


def test_modifiers_are_rejected() -> None:
    with pytest.raises(BadRequest, match=":exact"):
        QUANTITY.predicate(1, "exact", ["5"], A, CTX)


def _pred(raw: str) -> tuple[str, list[object]]:
    query, params = QUANTITY.predicate(4, None, [raw], A, CTX)
    return query.as_string(None), params


def test_predicate_forms() -> None:
    text, params = _pred("5.4")
    assert params == [4, Decimal("5.35"), Decimal("5.45")]
    assert "system" not in text and "code" not in text
    text, params = _pred(f"5.4|{UCUM}|mg")
    assert params == [4, Decimal("5.35"), Decimal("5.45"), UCUM, "mg"]
    assert '"a"."unit"' not in text
    text, params = _pred("5.4||mg")
    assert params == [4, Decimal("5.35"), Decimal("5.45"), "mg", "mg"]
    assert '"a"."code" = %s OR "a"."unit" = %s' in text
    text, params = _pred("||mg")
    assert params == [4, "mg", "mg"]
    text, params = _pred("gt5|urn:iso:std:iso:4217|EUR")
    assert params == [4, Decimal("5"), CURRENCY_SYSTEM, "EUR"]
    assert text.count("%s") == len(params)
