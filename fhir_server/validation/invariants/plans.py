"""What to check where: one plan per structure (type or backbone path), built on first use.

A plan lists the invariants of its structure (its type's and base types', or its
backbone element's) and, per JSON property that may occur in it, an edge: the
invariants of that element (``Organization.telecom``: org-3; a ``SimpleQuantity``
element: sqty-1), the structure its values are walked into, and the resource types a
Reference there may point to. Walking a resource visits only the properties it has,
so a resource evaluates exactly the invariants of the elements it holds: every Period
per-1, every Extension ext-1, every Reference ref-1...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fhir_server.definitions import Definitions
from fhir_server.definitions.model import ElementInfo
from fhir_server.validation.invariants.catalog import Catalog, Constraint
from fhir_server.validation.invariants.engine import Check, Engine

Code = tuple[str, str]  # (system, code)
Members = Callable[[str], "frozenset[Code] | None"]


@dataclass(slots=True)
class Edge:
    """One JSON property of a structure."""

    element: str
    array: bool
    #: the structure its values are walked into (None: a primitive)
    structure: str | None
    #: values are resources (contained, Bundle.entry.resource): walked by their type
    resource: bool = False
    checks: list[Check] = field(default_factory=list)
    #: resource types a relative literal reference may name (None: any)
    targets: frozenset[str] | None = None
    narrative: bool = False
    #: an extensible or preferred binding whose value set could be expanded
    binding: Binding | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """An extensible or preferred binding and its value set's members."""

    strength: str
    url: str
    members: frozenset[Code]
    codes: frozenset[str]


@dataclass(slots=True)
class Plan:
    """The checks of one structure and the edges of its properties."""

    checks: list[Check]
    edges: dict[str, Edge]


class Plans:
    """The plans of every structure, memoised (each built when first walked)."""

    def __init__(self, definitions: Definitions, catalog: Catalog, engine: Engine,
                 members: Members | None = None) -> None:
        self._defs = definitions
        self._catalog = catalog
        self._engine = engine
        #: a value set's (system, code) pairs, None when it cannot be expanded
        self._members = members
        self._bindings: dict[str, Binding | None] = {}
        self._plans: dict[str, Plan] = {}
        self._primitive = definitions.primitive_types

    def plan(self, structure: str) -> Plan:
        """The plan of ``structure`` (a type name or backbone path), built on first use:
        a type's plan and the invariants it compiles cost a few ms once per worker,
        where building all 146 types' at start cost ~0.9 s of every process start."""
        found = self._plans.get(structure)
        if found is None:
            found = self._build(structure)
            self._plans[structure] = found
        return found

    def _build(self, structure: str) -> Plan:
        # %resource is the structure's resource: its root name, for a data type any.
        root = structure.split(".")[0]
        resource_type = root if root in self._defs.resource_types else "Resource"
        if "." in structure:
            own = self._catalog.constraints.get(structure, [])
        else:
            own = self._catalog.chain(structure)
        checks = self._compile(own, structure, resource_type)
        edges: dict[str, Edge] = {}
        for name, info in self._defs.properties(structure).items():
            if not name.startswith("_"):
                edges[name] = self._edge(name, info, resource_type)
        return Plan(checks, edges)

    def _edge(self, name: str, info: ElementInfo, resource_type: str) -> Edge:
        type_name = _type_of(name, info)
        if info.is_backbone:
            structure: str | None = self._defs.structure_path(info.path)
        elif type_name in self._primitive or type_name is None:
            structure = None
        else:
            structure = type_name
        base = structure or type_name or info.path
        own: list[Constraint] = [] if info.is_backbone else \
            list(self._catalog.constraints.get(info.path, []))
        for profile in self._catalog.type_profiles.get(info.path, ()):
            own += self._catalog.constraints.get(profile, [])
        targets = self._catalog.targets.get(info.path) if type_name == "Reference" else None
        if targets is not None and ("Resource" in targets or not targets):
            targets = None
        return Edge(info.path, info.is_array, structure,
                    resource=type_name == "Resource",
                    checks=self._compile(own, base, resource_type), targets=targets,
                    narrative=info.path == "Narrative.div",
                    binding=self._binding(info.path))

    def _binding(self, path: str) -> Binding | None:
        bound = self._catalog.bindings.get(path)
        if bound is None or self._members is None:
            return None
        strength, url = bound
        if url not in self._bindings:  # one expansion per value set
            members = self._members(url)
            self._bindings[url] = None if not members else Binding(
                strength, url, members, frozenset(c for _, c in members))
        found = self._bindings[url]
        return found if found is None or found.strength == strength else \
            Binding(strength, url, found.members, found.codes)

    def _compile(self, constraints: list[Constraint], base: str,
                 resource_type: str) -> list[Check]:
        out = []
        for constraint in constraints:
            check = self._engine.check(constraint, base, resource_type)
            if check is not None:
                out.append(check)
        return out


def _type_of(name: str, info: ElementInfo) -> str | None:
    """The type of the property ``name`` (``valueQuantity``: ``Quantity``)."""
    if not info.is_choice:
        return info.types[0] if len(info.types) == 1 else None
    stem = info.name[:-3]
    for type_name in info.types:
        if stem + type_name[0].upper() + type_name[1:] == name:
            return type_name
    return None
