"""Quantity predicates run in PostgreSQL against rows written through fhir_write_index."""

from __future__ import annotations

import json
import random
from fractions import Fraction
from typing import Any

import psycopg
import pytest

from fhir_server.errors import BadRequest
from fhir_server.search.base import Node, ParseContext
from fhir_server.search.quantity import QUANTITY
from tests.integration.storage.sql.scratch import PREFIXES, Param, scratch_fixture

CTX = ParseContext()
P = 616161
UCUM = "http://unitsofmeasure.org"
ISO = "urn:iso:std:iso:4217"
INF = float("inf")


db = scratch_fixture()
PARAM = Param(P, CTX)
load, matching = PARAM.load, PARAM.matching


# -- independent model -----------------------------------------------------------------

Bound = Fraction | float


def number_matches(prefix: str, lo: Bound, hi: Bound, text: str) -> bool:
    """R4 number semantics: eq/ne/ap on the implicit range, comparisons exact."""
    mantissa, _, exp = text.lower().partition("e")
    scale = Fraction(10) ** int(exp or 0)
    half = scale / Fraction(10) ** len(mantissa.partition(".")[2]) / 2
    value = Fraction(mantissa) * scale
    if prefix == "ap":
        margin = max(abs(value) / 10, half)
        return lo <= value + margin and hi >= value - margin
    inside = value - half <= lo and hi < value + half
    return {"eq": inside, "ne": not inside, "gt": hi > value, "ge": hi >= value,
            "lt": lo < value, "le": lo <= value, "sa": lo > value, "eb": hi < value}[prefix]


def expected(target: dict[str, Any], raw: str) -> bool:
    """Whether one stored quantity (as a dict of truth) matches one search value."""
    number, *unit = raw.split("|")
    if unit:
        system, code = unit
        if system and target["system"] != system:
            return False
        if code and (target["code"] != code if system else code not in (
                target["code"], target["unit"])):
            return False
    if not number:
        return True
    prefix = number[:2] if number[:2] in PREFIXES else "eq"
    text = number[2:] if number[:2] in PREFIXES else number
    return number_matches(prefix, target["lo"], target["hi"], text)


UNITS: list[tuple[str | None, str | None, str | None]] = [
    (UCUM, "mg", "mg"), (UCUM, "g", "g"), (UCUM, "mg", "milligram"), (None, None, "mg"),
    ("http://snomed.info/sct", "258684004", "mg"), (UCUM, "mm[Hg]", "mmHg"),
]


def dataset() -> tuple[dict[int, list[Node]], dict[int, list[dict[str, Any]]]]:
    rng = random.Random(11)
    nodes: dict[int, list[Node]] = {}
    truth: dict[int, list[dict[str, Any]]] = {}
    for rid in range(1, 241):
        system, code, unit = rng.choice(UNITS)
        assert unit is not None
        value = Fraction(rng.choice([5, 54, 540, 100, 120]), rng.choice([1, 10, 100]))
        value += Fraction(rng.randrange(-9, 10), 1000) if rid % 3 == 0 else 0
        text = f"{float(value):.3f}".rstrip("0").rstrip(".")
        quantity: dict[str, Any] = {"value": json.loads(text), "unit": unit}
        if system:
            quantity["system"], quantity["code"] = system, code
        lo: Bound = Fraction(text)
        hi: Bound = Fraction(text)
        kind = "Quantity"
        if rid % 10 == 0:
            quantity["comparator"] = "<"
            lo = -INF
        elif rid % 10 == 5:
            quantity = {"value": json.loads(text), "currency": "EUR" if rid % 20 == 5 else "USD"}
            system, code, unit = ISO, quantity["currency"], None
            kind = "Money"
        elif rid % 10 == 7:
            quantity = {"low": {**quantity}, "high": {**quantity, "value": json.loads(text) * 2}}
            hi = Fraction(str(json.loads(text) * 2))
            kind = "Range"
        nodes[rid] = [Node(quantity, kind)]
        truth[rid] = [{"system": system, "code": code, "unit": unit, "lo": lo, "hi": hi}]
    return nodes, truth


loaded = PARAM.loaded_fixture(QUANTITY, dataset)


NUMBERS = ["5.4", "5.40", "5.4e1", "0.054", "100", "1.2", "12", "0.5", "5"]
UNIT_FORMS = ["", f"|{UCUM}|mg", "||mg", f"|{UCUM}|", "||milligram", f"|{ISO}|EUR", "||EUR",
              "||258684004", "|http://snomed.info/sct|mg"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_grid(loaded: tuple[psycopg.Connection[Any], dict[int, Any]], prefix: str) -> None:
    conn, truth = loaded
    wrong = []
    for number in NUMBERS:
        for units in UNIT_FORMS:
            raw = f"{prefix}{number}{units}"
            want = {rid for rid, targets in truth.items()
                    if any(expected(t, raw) for t in targets)}
            got = matching(conn, QUANTITY, [raw])
            if got != want:
                wrong.append((raw, sorted(got - want), sorted(want - got)))
    assert not wrong


@pytest.mark.parametrize("units", ["||mg", f"|{UCUM}|mm[Hg]", f"|{ISO}|USD"])
def test_unit_only(loaded: tuple[psycopg.Connection[Any], dict[int, Any]], units: str) -> None:
    conn, truth = loaded
    want = {rid for rid, targets in truth.items() if any(expected(t, units) for t in targets)}
    assert want
    assert matching(conn, QUANTITY, [units]) == want


@pytest.fixture(scope="module")
def examples(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    load(db, QUANTITY, {
        1001: [Node({"value": 5.4, "unit": "mg", "system": UCUM, "code": "mg"}, "Quantity")],
        1002: [Node({"value": 0.0054, "unit": "g", "system": UCUM, "code": "g"}, "Quantity")],
        1003: [Node({"value": 5.4, "unit": "mg"}, "Quantity")],
        1004: [Node({"value": 5.4, "unit": "mg", "system": "urn:local", "code": "MGM"},
                    "Quantity")],
        1005: [Node({"value": 5.4, "currency": "EUR"}, "Money")],
        1006: [Node({"value": 4, "comparator": "<", "unit": "mg", "system": UCUM,
                     "code": "mg"}, "Quantity")],
        1007: [Node({"low": {"value": 5, "unit": "mg", "system": UCUM, "code": "mg"}},
                    "Range")],
    })
    return db


@pytest.mark.parametrize(("value", "rids"), [
    (f"5.4|{UCUM}|mg", {1001}),                # system and code both match
    ("5.4||mg", {1001, 1003, 1004}),           # code or human unit
    ("5.4", {1001, 1003, 1004, 1005}),         # any unit
    (f"5.40e-3|{UCUM}|g", {1002}),             # 0.0054 +- 0.000005
    (f"5.4|{UCUM}|g", set()),                  # no UCUM conversion
    (f"le5.4|{UCUM}|mg", {1001, 1006, 1007}),  # "<4 mg" and "5 mg or more" both reach below
    (f"gt5.4|{UCUM}|mg", {1007}),              # an open-ended Range
    (f"lt4|{UCUM}|mg", {1006}),
    (f"eq4|{UCUM}|mg", set()),                 # "<4" is not 4
    (f"ap5|{UCUM}|mg", {1001, 1007}),          # 5 +- 0.5; "<4" is not about 5
    (f"5.4|{ISO}|EUR", {1005}),                # Money
    ("5.4||EUR", {1005}),
    ("ge5|urn:local|MGM", {1004}),
])
def test_examples(examples: psycopg.Connection[Any], value: str, rids: set[int]) -> None:
    assert {r for r in matching(examples, QUANTITY, [value]) if r > 1000} == rids


def test_several_values_are_or_ed(examples: psycopg.Connection[Any]) -> None:
    found = {r for r in matching(examples, QUANTITY, [f"5.4|{ISO}|EUR", "5.40e-3||g"])
             if r > 1000}
    assert found == {1002, 1005}


def test_malformed_is_rejected(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(BadRequest):
        matching(db, QUANTITY, ["5.4|mg"])
