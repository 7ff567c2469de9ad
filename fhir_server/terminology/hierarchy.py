"""Subsumption in the code systems the server holds: concept nesting in
``CodeSystem.concept`` and ``parent``/``subsumedBy``/``child`` properties are read as
is-a (as the specification's own value sets use them in ``is-a`` filters)."""

from __future__ import annotations

from collections.abc import Mapping

from fhir_server.terminology.codesystems import CodeSystem

EQUIVALENT = "equivalent"
SUBSUMES = "subsumes"
SUBSUMED_BY = "subsumed-by"
NOT_SUBSUMED = "not-subsumed"


def _closure(edges: Mapping[str, tuple[str, ...]], code: str) -> list[str]:
    """``code`` and every code reachable from it along ``edges``, nearest first
    (breadth first; a cycle in a broken code system ends the walk, not the server)."""
    seen = {code}
    order = [code]
    index = 0
    while index < len(order):
        for nxt in edges.get(order[index], ()):
            if nxt not in seen:
                seen.add(nxt)
                order.append(nxt)
        index += 1
    return order


def descendants(system: CodeSystem, code: str) -> list[str]:
    """``code`` and every code below it."""
    return _closure(system.children, code)


def ancestors(system: CodeSystem, code: str) -> list[str]:
    """``code`` and every code above it."""
    return _closure(system.parents, code)


def subsumes(system: CodeSystem, code_a: str, code_b: str) -> str:
    """The $subsumes outcome of A against B (both codes of ``system``)."""
    if code_a == code_b:
        return EQUIVALENT
    if code_b in descendants(system, code_a):
        return SUBSUMES
    if code_a in descendants(system, code_b):
        return SUBSUMED_BY
    return NOT_SUBSUMED
