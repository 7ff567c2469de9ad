"""Composite predicates (code$value with prefixes) against real idx_composite rows.

Expectations are written by hand from the search specification (composite, prefixes).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.composite import COMPOSITE, ComponentSpec, composite_rows
from fhir_server.search.hashing import param_key
from tests.integration.storage.sql.scratch import (
    matching_rids,
    named_rows,
    scratch_fixture,
    write_index,
)

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"


def code(value: dict[str, Any]) -> list[Node]:
    """The ``code`` of a context value."""
    return [Node(value["code"], "CodeableConcept")] if "code" in value else []


def value(kind: str) -> Any:
    """An extractor of ``value[kind]``."""
    def extract(context: dict[str, Any]) -> list[Node]:
        key = f"value{kind}"
        return [Node(context[key], kind)] if key in context else []
    return extract


def concept(system: str | None, c: str) -> dict[str, Any]:
    """A one-coding CodeableConcept."""
    return {"coding": [{"system": system, "code": c} if system else {"code": c}]}


def qty(v: float, unit: str | None = None, system: str | None = None, **more: Any
        ) -> dict[str, Any]:
    """A Quantity; a unit with a system is also its code."""
    out: dict[str, Any] = {"value": v, **more}
    if unit:
        out.update({"unit": unit, "code": unit} if system else {"unit": unit})
    if system:
        out["system"] = system
    return out


#: param -> (component types, context extractor, component extractors)
PARAMS: dict[str, tuple[tuple[str, str], Any, list[ComponentSpec]]] = {
    "code-value-quantity": (("token", "quantity"), lambda r: [Node(r, "Observation")],
                            [("token", code), ("quantity", value("Quantity"))]),
    "component-code-value-quantity": (
        ("token", "quantity"),
        lambda r: [Node(c, "BackboneElement") for c in r.get("component", [])],
        [("token", code), ("quantity", value("Quantity"))]),
    "code-value-concept": (("token", "token"), lambda r: [Node(r, "Observation")],
                           [("token", code), ("token", value("CodeableConcept"))]),
    "code-value-date": (("token", "date"), lambda r: [Node(r, "Observation")],
                        [("token", code), ("date", lambda v: [
                            Node(v[k], k[5:]) for k in ("valueDateTime", "valuePeriod")
                            if k in v])]),
    "code-value-string": (("token", "string"), lambda r: [Node(r, "Observation")],
                          [("token", code), ("string", value("String"))]),
}

OBSERVATIONS: dict[int, dict[str, Any]] = {
    1: {"code": concept(LOINC, "2823-3"), "valueQuantity": qty(5.4, "mmol/L", UCUM)},
    2: {"code": concept(LOINC, "2823-3"), "valueQuantity": qty(6.0, "mmol/L", UCUM)},
    3: {"code": concept(LOINC, "2823-3"), "valueQuantity": qty(5.4, "mg")},
    4: {"code": concept(LOINC, "2951-2"), "valueQuantity": qty(140, "mmol/L", UCUM)},
    5: {"code": concept(LOINC, "85354-9"), "component": [
        {"code": concept(LOINC, "8480-6"), "valueQuantity": qty(120, "mm[Hg]", UCUM)},
        {"code": concept(LOINC, "8462-4"), "valueQuantity": qty(80, "mm[Hg]", UCUM)}]},
    6: {"code": concept(LOINC, "85354-9"), "component": [
        {"code": concept(LOINC, "8480-6"), "valueQuantity": qty(55, "mm[Hg]", UCUM)},
        {"code": concept(LOINC, "8462-4"), "valueQuantity": qty(95, "mm[Hg]", UCUM)}]},
    7: {"code": concept(None, "x"), "valueQuantity": qty(5.4)},
    8: {"code": concept(LOINC, "2823-3"), "valueQuantity": qty(3, comparator="<")},
    9: {"code": concept(LOINC, "x-ray"), "valueCodeableConcept": concept(SCT, "pos")},
    10: {"code": concept(LOINC, "d"), "valueDateTime": "2020-05-10"},
    11: {"code": concept(LOINC, "d"), "valuePeriod": {"start": "2020-01", "end": "2020-03"}},
    12: {"code": concept(LOINC, "s"), "valueString": "Négatif"},
    13: {"code": concept(None, "a$b"), "valueQuantity": qty(1)},
}


conn = scratch_fixture()


@pytest.fixture(scope="module")
def db(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """The scratch database with every composite row written."""
    index: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for rid, resource in OBSERVATIONS.items():
        rows: list[tuple[Any, ...]] = []
        for param, (_, context, components) in PARAMS.items():
            p = param_key("Observation", param)
            rows += composite_rows(p, context(resource), components, IndexContext())
        index[rid] = {"composite": named_rows(COMPOSITE, rows)}
    write_index(conn, index)
    return conn


def found(db: psycopg.Connection[Any], param: str, values: list[str]) -> set[int]:
    """The rids the predicate selects."""
    ctx = ParseContext(targets=PARAMS[param][0])
    return matching_rids(db, COMPOSITE, param_key("Observation", param), ctx, values)


K = f"{LOINC}|2823-3"
CASES: list[tuple[str, list[str], set[int]]] = [
    ("code-value-quantity", [f"{K}$gt5.4|{UCUM}|mmol/L"], {2}),
    ("code-value-quantity", [f"{K}$5.4"], {1, 3}),
    ("code-value-quantity", ["2823-3$ge5.4"], {1, 2, 3}),
    ("code-value-quantity", ["2823-3$lt5"], {8}),
    ("code-value-quantity", ["2823-3$5.4||mg"], {3}),
    ("code-value-quantity", ["2823-3$5.4||mmol/L"], {1}),
    ("code-value-quantity", [f"2823-3$5.4|{UCUM}|mg"], set()),
    ("code-value-quantity", ["2823-3$ne5.4"], {2, 8}),
    ("code-value-quantity", ["2823-3$ap5.4"], {1, 3}),
    ("code-value-quantity", ["2823-3$sa5.4"], {2}),
    ("code-value-quantity", ["2823-3$eb5.4"], {8}),
    ("code-value-quantity", ["2823-3$5.40"], {1, 3}),
    ("code-value-quantity", ["2823-3$5.41"], set()),
    ("code-value-quantity", ["2951-2$140", "2823-3$gt5.9"], {2, 4}),
    ("code-value-quantity", ["|x$5.4"], {7}),
    ("code-value-quantity", ["x$5.4"], {7}),
    ("code-value-quantity", [f"{LOINC}|x$5.4"], set()),
    ("code-value-quantity", ["|2823-3$5.4"], set()),
    ("code-value-quantity", ["a\\$b$1"], {13}),
    ("component-code-value-quantity", [f"{LOINC}|8480-6$lt60"], {6}),
    ("component-code-value-quantity", ["8480-6$gt100"], {5}),
    ("component-code-value-quantity", ["8480-6$95"], set()),  # 95 is another component's
    ("component-code-value-quantity", ["8462-4$95"], {6}),
    ("component-code-value-quantity", [f"8462-4$le80|{UCUM}|mm[Hg]"], {5}),
    ("code-value-quantity", ["8480-6$120"], set()),  # components are not the observation
    ("code-value-concept", [f"{LOINC}|x-ray${SCT}|pos"], {9}),
    ("code-value-concept", ["x-ray$pos"], {9}),
    ("code-value-concept", ["x-ray$|pos"], set()),
    ("code-value-concept", ["x-ray$neg", "d$pos"], set()),
    ("code-value-date", ["d$2020-05"], {10}),
    ("code-value-date", ["d$ge2020-04"], {10}),
    ("code-value-date", ["d$2020"], {10, 11}),
    ("code-value-date", ["d$lt2020-02"], {11}),
    ("code-value-date", ["d$eb2020-04-01"], {11}),
    ("code-value-date", ["d$sa2020-04"], {10}),
    ("code-value-string", ["s$negatif"], {12}),
    ("code-value-string", ["s$NÉGATIF"], {12}),
    ("code-value-string", ["s$neg"], set()),  # whole-value match (documented)
]


@pytest.mark.parametrize(("param", "values", "expected"), CASES,
                         ids=[f"{c[0]}={','.join(c[1])}" for c in CASES])
def test_composite_search(db: psycopg.Connection[Any], param: str, values: list[str],
                          expected: set[int]) -> None:
    assert found(db, param, values) == expected


def test_long_or_list_of_pairs(db: psycopg.Connection[Any]) -> None:
    values = [f"c{i}$v{i}" for i in range(300)] + [f"{LOINC}|x-ray${SCT}|pos"]
    assert found(db, "code-value-concept", values) == {9}
