"""Number predicates run in PostgreSQL against rows written through fhir_write_index.

Expectations are computed here with exact fractions from the search text itself.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from fractions import Fraction
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Node, ParseContext
from fhir_server.search.number import NUMBER
from fhir_server.storage.sql.number import NUMBER as NUMBER_SQL
from tests.integration.storage.sql.scratch import PREFIXES, Param, scratch_fixture

CTX = ParseContext()
P = 515151
INF = float("inf")


db = scratch_fixture()
PARAM = Param(P, CTX)
load, matching = PARAM.load, PARAM.matching


# -- independent model -----------------------------------------------------------------

Bound = Fraction | float  # ±inf for open Range ends


def search_value(text: str) -> tuple[Fraction, Fraction, Fraction]:
    """(value, low, high) of a search number: half a unit of its last written digit."""
    mantissa, _, exp = text.lower().partition("e")
    scale = Fraction(10) ** int(exp or 0)
    unit = scale / Fraction(10) ** len(mantissa.partition(".")[2])
    value = Fraction(mantissa) * scale
    return value, value - unit / 2, value + unit / 2


def expected(prefix: str, target: tuple[Bound, Bound], text: str) -> bool:
    """R4: eq/ne/ap use the implicit range, comparisons the exact value."""
    lo, hi = target
    value, s_lo, s_hi = search_value(text)
    if prefix == "ap":
        margin = abs(value) / 10
        a_lo, a_hi = min(s_lo, value - margin), max(s_hi, value + margin)
        return lo <= a_hi and hi >= a_lo
    inside = s_lo <= lo and hi < s_hi
    return {
        "eq": inside, "ne": not inside,
        "gt": hi > value, "ge": hi >= value,     # some of the target above the value
        "lt": lo < value, "le": lo <= value,     # some of it below
        "sa": lo > value, "eb": hi < value,      # all of it above / below
    }[prefix]


def _random_decimal(rng: random.Random) -> str:
    whole = rng.choice([0, 1, 5, 99, 100, 101, 250, 1000, -3, -100])
    digits = rng.randrange(0, 4)
    frac = rng.randrange(10**digits) if digits else 0
    jitter = Fraction(rng.randrange(-60, 61), 100) if rng.random() < 0.5 else Fraction(0)
    value = Fraction(whole) + Fraction(frac, 10**digits if digits else 1) + jitter
    return f"{float(value):.{digits + 2}f}"


def dataset() -> tuple[dict[int, list[Node]], dict[int, list[tuple[Bound, Bound]]]]:
    """Integers, decimals, Ranges (some open), plus the precision edge values."""
    rng = random.Random(7)
    nodes: dict[int, list[Node]] = {}
    truth: dict[int, list[tuple[Bound, Bound]]] = {}
    edges = ["99.7", "100.4", "100.5", "99.5", "99.49", "100", "100.00", "99.995", "100.005",
             "150", "50", "49.99", "0", "-0.5", "1e2"]
    for rid, text in enumerate(edges, start=1):
        nodes[rid] = [Node(json.loads(text) if "e" not in text else float(text), "decimal")]
        truth[rid] = [(Fraction(text), Fraction(text))] if "e" not in text else [
            (Fraction(100), Fraction(100))]
    for rid in range(len(edges) + 1, 301):
        if rid % 4 == 0:
            a, b = sorted((Fraction(_random_decimal(rng)), Fraction(_random_decimal(rng))))
            low: Bound = a if rid % 12 else -INF
            high: Bound = b if rid % 16 else INF
            rng_node: dict[str, Any] = {}
            if low != -INF:
                rng_node["low"] = {"value": float(a), "unit": "mg"}
            if high != INF:
                rng_node["high"] = {"value": float(b)}
            if not rng_node:
                continue
            nodes[rid] = [Node(rng_node, "Range")]
            truth[rid] = [(Fraction(str(float(a))) if low != -INF else low,
                           Fraction(str(float(b))) if high != INF else high)]
        elif rid % 4 == 1:
            value = rng.randrange(-5, 300)
            nodes[rid] = [Node(value, "integer")]
            truth[rid] = [(Fraction(value), Fraction(value))]
        else:
            texts = [_random_decimal(rng) for _ in range(1 + rid % 2)]
            nodes[rid] = [Node(Decimal(t), "decimal") for t in texts]
            truth[rid] = [(Fraction(t), Fraction(t)) for t in texts]
    return nodes, truth


loaded = PARAM.loaded_fixture(NUMBER, dataset)


def _expected_rids(truth: dict[int, list[tuple[Bound, Bound]]], prefix: str,
                   text: str) -> set[int]:
    return {rid for rid, targets in truth.items()
            if any(expected(prefix, t, text) for t in targets)}


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("text", ["100", "100.00", "1e2", "1.00e2", "0", "99.5", "5.4",
                                  "-100", "250.0", "1.5e1", "0.001"])
def test_grid(loaded: tuple[psycopg.Connection[Any], dict[int, Any]], prefix: str,
              text: str) -> None:
    conn, truth = loaded
    assert matching(conn, NUMBER, [prefix + text]) == _expected_rids(truth, prefix, text)


# rids: 1 99.7, 2 100.4, 3 100.5, 4 99.5, 5 99.49, 6 100, 7 100.00, 8 99.995, 9 100.005,
# 10 150, 11 50, 12 49.99, 13 0, 14 -0.5, 15 1e2
@pytest.mark.parametrize(("value", "rids"), [
    ("100", {1, 2, 4, 6, 7, 8, 9, 15}),       # 99.7 and 100.4 yes, 100.5 and 99.49 no
    ("100.00", {6, 7, 8, 15}),                # [99.995, 100.005)
    ("1e2", {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 15}),  # one significant figure: [50, 150)
    ("gt100", {2, 3, 9, 10}),                 # greater than exactly 100
    ("ge100", {2, 3, 6, 7, 9, 10, 15}),
    ("ne100", {3, 5, 10, 11, 12, 13, 14}),
])
def test_precision_examples(loaded: tuple[psycopg.Connection[Any], dict[int, Any]],
                            value: str, rids: set[int]) -> None:
    conn, _ = loaded
    assert matching(conn, NUMBER, [value]) & set(range(1, 16)) == rids


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=-400, max_value=400_000), st.integers(min_value=0, max_value=3),
       st.one_of(st.none(), st.integers(min_value=-2, max_value=2)),
       st.sampled_from(PREFIXES))
def test_property(loaded: tuple[psycopg.Connection[Any], dict[int, Any]], digits: int,
                  decimals: int, exponent: int | None, prefix: str) -> None:
    conn, truth = loaded
    sign = "-" if digits < 0 else ""
    whole, frac = divmod(abs(digits), 10**decimals)
    text = f"{sign}{whole}" + (f".{frac:0{decimals}d}" if decimals else "")
    if exponent is not None:
        text += f"e{exponent}"
    assert matching(conn, NUMBER, [prefix + text]) == _expected_rids(truth, prefix, text)


def test_integers_match_exactly(db: psycopg.Connection[Any]) -> None:
    # "the significance issues cancel out": integer targets match only the same integer.
    load(db, NUMBER, {2001: [Node(2, "positiveInt")], 2002: [Node(3, "positiveInt")]})
    found = matching(db, NUMBER, ["2"]) & {2001, 2002}
    assert found == {2001}
    assert matching(db, NUMBER, ["2.5"]) & {2001, 2002} == set()


def test_malformed_is_rejected(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(BadRequest):
        matching(db, NUMBER, ["gt1,5"])


def test_sort_key(loaded: tuple[psycopg.Connection[Any], dict[int, Any]]) -> None:
    conn, truth = loaded
    alias = sql.Identifier("a")
    for descending in (False, True):
        query = sql.SQL("SELECT a.rid, {}::text FROM idx_number a WHERE a.rid <= 300 "
                        "GROUP BY a.rid").format(NUMBER_SQL.sort_key(alias, descending))
        got = {rid: value for rid, value in conn.execute(query)}
        for rid, targets in truth.items():
            bound = (max(t[1] for t in targets) if descending
                     else min(t[0] for t in targets))
            text = got[rid]
            assert (float(text) if "nfinity" in text else Fraction(text)) == bound
