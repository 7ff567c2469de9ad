"""The fast path and fhirpathpy agree; the skip and fix tables are deliberate."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fhir_server.validation.invariants import Invariants
from fhir_server.validation.invariants.catalog import Constraint
from fhir_server.validation.invariants.engine import FIXED, SKIPPED, Check, Engine
from fhir_server.validation.invariants.fastpath import Defer, Env
from tests.data import fhir_r4_examples


class Recorder:
    """Evaluates every check both ways, counting agreements."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.both = 0
        self.disagreements: list[tuple[str, str, bool, bool]] = []

    def holds(self, check: Check, node: Any, env: Env) -> bool:
        slow = self.engine.slow(check, node, env)
        if check.fast is None:
            return slow
        try:
            fast = check.fast([node], env) != [False]
        except Defer:
            return slow
        self.both += 1
        if fast != slow and check.constraint.key != "rng-2":  # fhirpathpy: no Quantity <=
            self.disagreements.append((check.constraint.key, str(node)[:80], fast, slow))
        return fast


def test_the_fast_path_agrees_with_fhirpathpy_on_every_official_example(
        invariants: Invariants, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(invariants.engine)
    monkeypatch.setattr(invariants.engine, "holds", recorder.holds)
    for path in fhir_r4_examples():
        invariants.issues(orjson.loads(path.read_bytes()))
    assert recorder.disagreements == []
    assert recorder.both > 40_000  # the fast path did most of the work


def test_most_invariants_take_the_fast_path(invariants: Invariants) -> None:
    engine = invariants.engine
    assert engine.fast_count > 2 * engine.slow_count


@pytest.mark.parametrize("key", sorted(FIXED))
def test_each_fix_applies_to_the_r4_expression(invariants: Invariants, key: str) -> None:
    constraints = [c for cs in invariants.catalog.constraints.values() for c in cs
                   if c.key == key]
    assert constraints and all(FIXED[key][0] in c.expression for c in constraints)


def test_skipped_invariants_are_not_compiled(invariants: Invariants) -> None:
    for key in SKIPPED:
        assert invariants.engine.check(Constraint(key, "error", "", "true", "Patient"),
                                       "Patient", "Patient") is None


def _verdict(invariants: Invariants, expression: str, node: Any, base: str,
             resource: Any = None) -> tuple[bool, bool]:
    """(fast, fhirpathpy) verdicts of ``expression`` on ``node``."""
    check = invariants.engine.check(Constraint("t-1", "error", "", expression, base),
                                    base, base.split(".")[0])
    assert check is not None and check.fast is not None
    env = Env(resource or node, resource or node)
    return invariants.engine.holds(check, node, env), invariants.engine.slow(check, node, env)


@pytest.mark.parametrize(("expression", "node", "expected"), [
    ("start.hasValue().not() or end.hasValue().not() or (start <= end)",
     {"start": "2021-02", "end": "2021-01"}, False),
    ("start.hasValue().not() or end.hasValue().not() or (start <= end)",
     {"_start": {"extension": [{"url": "u", "valueString": "x"}]}, "end": "2021"}, True),
    ("(start.count() + end.count()) > 1", {"start": "2021"}, False),
    ("start.exists() xor end.exists()", {"start": "2021", "end": "2022"}, False),
    ("start.exists() implies end.exists()", {"end": "2022"}, True),
])
def test_fast_and_slow_agree(invariants: Invariants, expression: str,
                             node: dict[str, Any], expected: bool) -> None:
    assert _verdict(invariants, expression, node, "Period") == (expected, expected)


def test_the_fast_path_compares_instants_across_time_zones(invariants: Invariants) -> None:
    # 00:00Z <= 01:00Z once the offset is applied; fhirpathpy 2.2 drops the offsets
    period = {"start": "2021-01-01T00:00:00Z", "end": "2020-12-31T23:00:00-02:00"}
    assert _verdict(invariants, "start <= end", period, "Period") == (True, False)
