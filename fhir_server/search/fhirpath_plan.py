"""Type a parsed FHIRPath part against the definitions and build its fast runner.

Planning walks the steps over *branches*: a branch is the list of ops that reaches some
values plus the static FHIR type of those values and where that type's children are
defined. A choice element (``value[x]``) splits a branch into one per allowed type, with
the concrete JSON key (``valueQuantity``) as its last op, so every value keeps an exact
type and ``as(T)`` simply drops branches. Anything the planner cannot type statically
returns ``None`` and the caller falls back to fhirpathpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fhir_server.definitions import Definitions, ElementInfo
from fhir_server.search.fhirpath_ops import (
    Fan,
    OpSpec,
    Runner,
    allowed_python_types,
    exists_runner,
    make_runner,
)
from fhir_server.search.fhirpath_parse import (
    AsType,
    Child,
    Exists,
    Index,
    PathExpr,
    Step,
    WhereEq,
    WhereRef,
)

#: FHIRPath system type names as used in ``as(...)``, mapped to the FHIR primitive the
#: search parameters mean (``value.as(DateTime)`` in Observation ``code-value-date``).
SYSTEM_TYPES: Mapping[str, str] = MappingProxyType({
    "String": "string", "Boolean": "boolean", "Integer": "integer", "Decimal": "decimal",
    "Date": "date", "DateTime": "dateTime", "Time": "time",
})

@dataclass(frozen=True, slots=True)
class Branch:
    """Ops reaching some values, their FHIR type (None: any resource) and child scope."""

    ops: tuple[OpSpec, ...]
    type: str | None
    scope: str | None


class Planner:
    """Builds fast runners for parsed parts; holds the definitions and type hierarchy."""

    def __init__(self, definitions: Definitions, parents: Mapping[str, str]) -> None:
        self._defs = definitions
        # type -> base type, as in the FHIR type hierarchy (Age -> Quantity, code -> string)
        self._parents = dict(parents)
        self._primitives = definitions.primitive_types
        self._resource_types = definitions.resource_types

    def resource_branch(self, resource_type: str) -> Branch:
        """The branch of a resource of ``resource_type`` itself."""
        return Branch((), resource_type, resource_type)

    def context_branch(self, path: str) -> Branch | None:
        """The branch of an element path's value (``Observation.component``), or None."""
        first, *rest = path.strip().split(".")
        if self._defs.element(first) is None:
            return None
        branch = Branch((), first, first)
        for name in rest:
            found = self._child(branch, name)
            if found is None or len(found) != 1:
                return None
            branch = Branch((), found[0].type, found[0].scope)
        return branch

    def runner(self, expr: PathExpr, root: Branch, from_resource: bool) -> Runner | None:
        """The fast runner of ``expr`` evaluated from ``root``; None if not typeable."""
        steps = expr.steps
        exists = bool(steps) and steps[-1] == Exists()
        path = PathExpr(expr.root, expr.root_name, steps[:-1] if exists else steps)
        branches = self.branches(path, root)
        if branches is None:
            return None
        inner = self.build(branches, from_resource)
        if exists or expr.not_equal:
            return exists_runner(inner, expr.not_equal)
        return inner

    def branches(self, expr: PathExpr, root: Branch) -> list[Branch] | None:
        """The typed branches of a plain path (no ``exists()``); None if not typeable."""
        if expr.not_equal or Exists() in expr.steps:
            return None
        branches: list[Branch] | None = [root]
        for step in expr.steps:
            branches = self._apply(step, branches or [])
            if branches is None:
                return None
        return branches

    def build(self, branches: list[Branch], from_resource: bool) -> Runner:
        """One runner for ``branches``; those differing only in their last key share a walk.

        The branches of several union parts may be built together
        (``(Observation.value as Quantity) | (Observation.value as SampledData)``).
        """
        groups: dict[tuple[OpSpec, ...], list[Fan]] = {}
        for branch in branches:
            if branch.ops and branch.ops[-1][0] == "child":
                prefix, key = branch.ops[:-1], branch.ops[-1][1]
            else:
                prefix, key = branch.ops, None
            allowed = allowed_python_types(branch.type, self._primitives)
            groups.setdefault(prefix, []).append((key, branch.type, allowed))
        return make_runner(list(groups.items()), from_resource, self._resource_types)

    def _apply(self, step: Step, branches: list[Branch]) -> list[Branch] | None:
        """The branches after one step; None when the step cannot be typed."""
        if isinstance(step, Child):
            out: list[Branch] = []
            missing = 0
            for branch in branches:
                found = self._child(branch, step.name)
                if found is None:
                    missing += 1
                else:
                    out += found
            # After a choice (``value.code``) the types without that child select
            # nothing; a child no branch knows is left to fhirpathpy.
            return None if missing == len(branches) and branches else out
        if isinstance(step, AsType):
            wanted = SYSTEM_TYPES.get(step.name, step.name)
            if any(b.type is None for b in branches):
                return None
            return [b for b in branches if self.is_subtype(b.type or "", wanted)]
        if isinstance(step, Index):
            # Indexing is over the whole collection; several branches would need merging
            # in document order, which the branch model does not keep.
            if len(branches) != 1:
                return None
            return [self._extend(branches[0], ("index", step.n))]
        if isinstance(step, WhereRef):
            if step.name not in self._resource_types \
                    or any(b.type != "Reference" for b in branches):
                return None
            return [self._extend(b, ("ref", step.name)) for b in branches]
        if isinstance(step, WhereEq):
            if any(b.type in self._primitives for b in branches):
                return None
            spec = ("eq", step.name, step.literal, type(step.literal).__name__)
            return [self._extend(b, spec) for b in branches]
        return None

    @staticmethod
    def _extend(branch: Branch, spec: OpSpec) -> Branch:
        """``branch`` with one more op that keeps its type."""
        return Branch((*branch.ops, spec), branch.type, branch.scope)

    def _child(self, branch: Branch, name: str) -> list[Branch] | None:
        """The branches of child ``name`` (one per type for a choice element)."""
        if branch.scope is None:
            return None
        children = self._defs.children(branch.scope)
        info = children.get(name)
        if info is not None:
            typed = self._element_type(info)
            if typed is None:
                return None
            return [Branch((*branch.ops, ("child", name)), *typed)]
        info = children.get(name + "[x]")
        if info is None:
            return None
        return [Branch((*branch.ops, ("child", name + t[0].upper() + t[1:])), t, t)
                for t in info.types]

    def _element_type(self, info: ElementInfo) -> tuple[str | None, str | None] | None:
        """(FHIR type, child scope) of a non-choice element; None when unknown."""
        if info.content_reference is not None:
            target = self._defs.element(info.content_reference)
            kind = target.types[0] if target is not None and target.types else "BackboneElement"
            return kind, info.content_reference
        if info.has_children:
            return (info.types[0] if info.types else "BackboneElement"), info.path
        if info.types == ("Resource",):
            return None, None
        if len(info.types) == 1:
            return info.types[0], info.types[0]
        return None

    def element_type(self, path: str) -> str | None:
        """The FHIR type of the element at ``path`` (for typing fallback results)."""
        info = self._defs.element(path)
        if info is None:
            return None
        typed = self._element_type(info)
        return typed[0] if typed is not None else None

    def is_subtype(self, kind: str, wanted: str) -> bool:
        """Whether ``kind`` is ``wanted`` or derives from it (``Age`` is a ``Quantity``)."""
        for _ in range(16):  # the hierarchy is shallow; the bound guards odd input
            if kind == wanted:
                return True
            parent = self._parents.get(kind)
            if parent is None:
                return False
            kind = parent
        return False
