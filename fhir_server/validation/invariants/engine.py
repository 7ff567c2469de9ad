"""Compiling and evaluating one invariant: the typed fast path, else fhirpathpy.

Each constraint is compiled once per (expression, context type) when the plan of its
type is built (on first use). :mod:`fastpath` compiles most of them to closures; the
rest, and any evaluation the fast path defers, run on fhirpathpy with the R4 model. A result of
``false`` fails the invariant; ``true`` and an empty result (FHIRPath's "unknown", e.g.
dates of different precision) pass; an evaluation that raises is not held against the
resource (it is counted in :attr:`Engine.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from fhirpathpy import apply_parsed_path
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.engine.util import set_paths
from fhirpathpy.models import models
from fhirpathpy.parser import parse

from fhir_server.definitions import Definitions
from fhir_server.validation.invariants.catalog import Constraint
from fhir_server.validation.invariants.fastpath import Compiler, Defer, Env, Fn, Unsupported

log = logging.getLogger(__name__)

#: key -> why the constraint is not evaluated as written (README: Validation)
SKIPPED: dict[str, str] = {
    "ele-1": "checked by the structure stage (an empty object, or one holding only an "
             "id, is refused there as `structure`)",
    "txt-1": "htmlChecks() is no FHIRPath function: the XHTML check of "
             "fhir_server/validation/invariants/xhtml.py does it",
    "txt-2": "htmlChecks(): see txt-1 (non-whitespace content, or an image)",
    "ctm-1": "resolve(): the member's target is not read on write",
    "dom-6": "a best-practice recommendation (narrative), not a rule: R4 makes `text` "
             "optional and a warning on every resource without one would bury the others",
}
#: key -> (R4 expression, the one evaluated, why): R4 expressions known to be wrong
FIXED: dict[str, tuple[str, str, str]] = {
    "dom-3": (
        "%resource.descendants().as(canonical) | %resource.descendants().as(uri) | "
        "%resource.descendants().as(url)",
        "%resource.descendants().ofType(canonical) | %resource.descendants().ofType(uri) | "
        "%resource.descendants().ofType(url)",
        "as() on a collection is an error in FHIRPath (R4 erratum; later versions use "
        "ofType())"),
    "que-7": (
        "(answer is Boolean)", "(answer is boolean)",
        "System.Boolean is never the type of a FHIR answerBoolean (R4 erratum; R5 reads "
        "`answer is boolean`)"),
}
#: constraints that hold whenever the element named is absent; evaluating them costs
#: (descendants() over the whole resource), so they only run when it is present
REQUIRES: dict[str, str] = {"dom-3": "contained"}

# fhirpathpy is untyped: give what is used a type once.
_create_node: Callable[..., Any] = ResourceNode.create_node
_parse: Callable[[str], dict[str, Any]] = parse
_set_paths: Callable[..., Callable[..., Any]] = set_paths


def _has_value(inputs: list[Any]) -> list[bool]:
    """fhirpathpy has no hasValue(): one primitive that has a value."""
    return [len(inputs) == 1 and inputs[0] is not None
            and not isinstance(inputs[0], (dict, list))]


_OPTIONS: dict[str, Any] = {
    "traceFn": lambda label, value: None,  # trace() prints otherwise
    "userInvocationTable": {"hasValue": {"fn": _has_value}},
}


@dataclass(frozen=True, slots=True)
class Check:
    """One constraint compiled for one context type."""

    constraint: Constraint
    #: the closure of the fast path, None when the expression is outside it
    fast: Fn | None
    slow: Callable[..., Any] | None
    #: the path fhirpathpy types the context node with
    base: str
    requires: str | None = None


class Engine:
    """Compiles constraints (memoised) and evaluates them on nodes."""

    def __init__(self, definitions: Definitions) -> None:
        self._compiler = Compiler(definitions)
        self._model: dict[str, Any] = models["r4"]
        self._cache: dict[tuple[str, str, str], Check | None] = {}
        self._slow: dict[str, Callable[..., Any] | None] = {}
        self._parsed: dict[str, dict[str, Any] | None] = {}
        self.errors = 0
        self.fast_count = 0
        self.slow_count = 0

    def check(self, constraint: Constraint, base: str, resource_type: str) -> Check | None:
        """``constraint`` compiled for a node typed ``base``; None when skipped."""
        if constraint.key in SKIPPED or not constraint.expression:
            return None
        fixed = FIXED.get(constraint.key)
        if fixed is not None and fixed[0] in constraint.expression:
            constraint = replace(constraint, expression=constraint.expression.replace(
                fixed[0], fixed[1]))
        # %resource's type matters to the few expressions that use it
        memo = (constraint.expression, base,
                resource_type if "%resource" in constraint.expression else "")
        if memo in self._cache:
            found = self._cache[memo]
            return None if found is None else Check(constraint, found.fast, found.slow,
                                                    found.base, found.requires)
        fast: Fn | None = None
        ast = self._parse(constraint)
        if ast is None:
            self._cache[memo] = None
            return None
        try:
            fast = self._compiler.compile(ast, base, resource_type)
            self.fast_count += 1
        except Unsupported:
            self.slow_count += 1
        slow = self._fhirpathpy(constraint.expression, ast)
        if fast is None and slow is None:
            self._cache[memo] = None
            return None
        found = Check(constraint, fast, slow, base, REQUIRES.get(constraint.key))
        self._cache[memo] = found
        return found

    def _parse(self, constraint: Constraint) -> dict[str, Any] | None:
        """fhirpathpy's parse tree (ANTLR: ~3 ms; once per expression text)."""
        text = constraint.expression
        if text not in self._parsed:
            try:
                self._parsed[text] = _parse(text)
            except Exception:  # ANTLR raises plain exceptions
                log.warning("invariant %s: cannot parse %r", constraint.key, text)
                self._parsed[text] = None
        return self._parsed[text]

    def _fhirpathpy(self, text: str, ast: dict[str, Any]) -> Callable[..., Any]:
        """fhirpathpy's compiled form (typing comes with the node: once per text)."""
        found = self._slow.get(text)
        if found is None:
            found = _set_paths(apply_parsed_path, parsedPath=ast, model=self._model,
                              options=_OPTIONS)
            self._slow[text] = found
        return found

    def holds(self, check: Check, node: Any, env: Env) -> bool:
        """Whether the constraint is met on ``node`` (unknown counts as met)."""
        if check.requires is not None and isinstance(node, dict) and \
                check.requires not in node:
            return True
        if check.fast is not None:
            try:
                return self._verdict(check.fast([node], env))
            except Defer:
                pass
        return self.slow(check, node, env)

    def slow(self, check: Check, node: Any, env: Env) -> bool:
        """The verdict of fhirpathpy alone."""
        if check.slow is None:
            return True
        try:
            result = check.slow(_create_node(node, check.base),
                                {"resource": env.resource, "rootResource": env.root,
                                 "context": node})
        except Exception as exc:  # odd data or an expression fhirpathpy mis-evaluates
            self.errors += 1
            log.debug("invariant %s not evaluated: %s", check.constraint.key, exc)
            return True
        return self._verdict(result)

    @staticmethod
    def _verdict(result: list[Any]) -> bool:
        return not (len(result) == 1 and result[0] is False)
