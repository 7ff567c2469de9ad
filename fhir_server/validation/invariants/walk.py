"""The invariant stage of the validator: walks a resource along its plans.

On every node it evaluates the invariants that apply there (:mod:`plans`), checks the
narrative (:mod:`xhtml`), the JSON rules of primitives (``_x`` arrays aligned with
``x``, https://hl7.org/fhir/R4/json.html) and the target type of relative literal
references (``Patient/1`` where the definition allows only Organization...). Contained
resources are walked with ``%rootResource`` their container; Bundle entries and
Parameters resources are resources of their own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fhir_server.definitions import Definitions
from fhir_server.errors import Issue
from fhir_server.terminology import load_catalog
from fhir_server.terminology.expand import CannotExpand, Expander
from fhir_server.validation.invariants import tolerances
from fhir_server.validation.invariants.bindings import binding_issue
from fhir_server.validation.invariants.catalog import Catalog, Constraint
from fhir_server.validation.invariants.engine import Check, Engine
from fhir_server.validation.invariants.fastpath import Env
from fhir_server.validation.invariants.plans import Code, Edge, Members, Plan, Plans
from fhir_server.validation.invariants.xhtml import check_narrative

INVARIANT = "invariant"
STRUCTURE = "structure"
_RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?")
_MAX_DEPTH = 64  # below the JSON depth limit: a guard against pathological nesting


class Invariants:
    """The FHIRPath invariants of the base definitions, and of profiles on demand."""

    def __init__(self, definitions: Definitions, catalog: Catalog,
                 strict: bool = False, members: Members | None = None) -> None:
        self._defs = definitions
        self.catalog = catalog
        #: False: the defects of :mod:`.tolerances` are warnings
        self.strict = strict
        self.engine = Engine(definitions)
        # members: value set expansions for the extensible/preferred binding warnings
        self._plans = Plans(definitions, catalog, self.engine, members)
        self._narrative = catalog.constraints.get("Narrative.div", [])

    @classmethod
    def load(cls, definitions: Definitions, folder: Path, strict: bool = False
             ) -> Invariants:
        """Read the base bundles of ``folder`` and compile every invariant once; the
        extensible and preferred bindings are expanded from ``folder``'s code systems."""
        expander = Expander(load_catalog(folder))
        return cls(definitions, Catalog.load(folder), strict, _members(expander))

    def issues(self, resource: dict[str, Any]) -> list[Issue]:
        """Every failed invariant and JSON rule of ``resource`` (already accepted by the
        structure stage): errors, and warnings for ``warning`` invariants."""
        out: list[Issue] = []
        resource_type = str(resource.get("resourceType"))
        env = Env(resource, resource)
        self._walk(resource, resource_type, resource_type, env, out, 0)
        return out

    # -- the walk ---------------------------------------------------------------------

    def _walk(self, node: dict[str, Any], structure: str, where: str, env: Env,
              out: list[Issue], depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        plan: Plan = self._plans.plan(structure)
        self._evaluate(plan.checks, node, where, env, out)
        edges = plan.edges
        for key, value in node.items():
            if key[:1] == "_":
                edge = edges.get(key[1:])
                if edge is not None:
                    self._primitive_extras(node, key, edge, where, env, out, depth)
                continue
            edge = edges.get(key)
            if edge is None:
                continue
            if isinstance(value, list):
                if not edge.array:
                    continue  # the structure stage reports it
                for index, item in enumerate(value):
                    self._item(edge, key, item, f"{where}.{key}[{index}]", env, out, depth)
            else:
                self._item(edge, key, value, f"{where}.{key}", env, out, depth)

    def _primitive_extras(self, node: dict[str, Any], key: str, edge: Edge, where: str,
                          env: Env, out: list[Issue], depth: int) -> None:
        """``_x``: aligned with ``x``, and its extensions checked like any others."""
        value = node[key]
        if edge.array:
            self._aligned(node, key[1:], where, out)
            for index, item in enumerate(value if isinstance(value, list) else ()):
                if isinstance(item, dict):
                    self._walk(item, "Element", f"{where}.{key}[{index}]", env, out,
                               depth + 1)
        elif isinstance(value, dict):
            self._walk(value, "Element", f"{where}.{key}", env, out, depth + 1)

    def _item(self, edge: Edge, key: str, item: Any, where: str, env: Env,
              out: list[Issue], depth: int) -> None:
        if item is None:
            return
        if edge.checks:
            self._evaluate(edge.checks, item, where, env, out)
        if edge.binding is not None:
            missed = binding_issue(edge.binding, item, where)
            if missed is not None:
                out.append(missed)
        if not isinstance(item, dict):
            if edge.narrative:
                self._narrative_issues(item, where, env, out)
            return
        if edge.resource:
            kind = item.get("resourceType")
            if isinstance(kind, str) and kind in self._defs.resource_types:
                # contained resources see their container as %rootResource
                root = env.root if key == "contained" else item
                self._walk(item, kind, where, Env(item, root), out, depth + 1)
            return
        if edge.targets is not None:
            self._target(edge, item, where, env, out)
        if edge.structure is not None:
            self._walk(item, edge.structure, where, env, out, depth + 1)

    def _evaluate(self, checks: Sequence[Check], node: Any, where: str, env: Env,
                  out: list[Issue]) -> None:
        for check in checks:
            if not self.engine.holds(check, node, env):
                out.append(_failed(check.constraint, where))

    # -- the rules besides FHIRPath ---------------------------------------------------

    def _narrative_issues(self, div: Any, where: str, env: Env, out: list[Issue]) -> None:
        human = {c.key: c.human for c in self._narrative}
        for key, message in check_narrative(div):
            tolerated = not self.strict and key == "txt-2" and \
                env.resource.get("resourceType") in tolerances.EMPTY_NARRATIVE
            out.append(Issue(INVARIANT, f"{key}: {human.get(key, 'narrative')}: {message}",
                             severity="warning" if tolerated else "error",
                             expression=(where,)))

    def _aligned(self, node: dict[str, Any], name: str, where: str,
                 out: list[Issue]) -> None:
        values, extras = node.get(name), node.get("_" + name)
        if not isinstance(extras, list):
            return  # the structure stage reports a `_x` that is no array
        if values is None:
            # `_x` alone: each entry needs an id or extensions (the structure stage
            # checks those there are), and a null one stands for nothing
            for index, extra in enumerate(extras):
                if extra is None:
                    out.append(Issue(STRUCTURE, f"{where}._{name}[{index}]: null with no "
                                     f"{name} value beside it",
                                     expression=(f"{where}._{name}[{index}]",)))
            return
        if not isinstance(values, list):
            return
        if len(values) != len(extras):
            out.append(Issue(STRUCTURE, f"{where}._{name} has {len(extras)} entries but "
                             f"{name} has {len(values)}: the arrays must be aligned "
                             "(null where one has no entry)",
                             expression=(f"{where}._{name}",)))
            return
        for index, (value, extra) in enumerate(zip(values, extras, strict=True)):
            if value is None and extra is None:
                out.append(Issue(STRUCTURE, f"{where}.{name}[{index}]: null in both {name} "
                                 f"and _{name}", expression=(f"{where}.{name}[{index}]",)))

    def _target(self, edge: Edge, item: dict[str, Any], where: str, env: Env,
                out: list[Issue]) -> None:
        reference = item.get("reference")
        if not isinstance(reference, str) or edge.targets is None:
            return
        if reference[:1] == "#":
            target = _contained_type(env.root, reference[1:])
        else:
            match = _RELATIVE.fullmatch(reference)
            target = match.group(1) if match is not None else None
        if target is None:
            return  # absolute, urn:, logical, "#" (the container): no type to check
        if target in self._defs.resource_types and target not in edge.targets:
            tolerated = not self.strict and (edge.element, target) in tolerances.TARGETS
            out.append(Issue(STRUCTURE, f"{where}: a reference to {target} is not allowed "
                             f"here (allowed: {', '.join(sorted(edge.targets))})",
                             severity="warning" if tolerated else "error",
                             expression=(where,)))

    # -- profiles' invariants ---------------------------------------------------------

    def check_constraints(self, resource: dict[str, Any],
                          constraints: Sequence[dict[str, Any]]) -> list[Issue]:
        """The ``check_constraints`` hook of :class:`ProfileSet`: each constraint (with
        ``context``, its element path) on every value at that path. A constraint on a
        slice (its ``element`` id names one: ``Observation.component:systolic``) is not
        evaluated: telling which values are the slice's is the profile walker's."""
        out: list[Issue] = []
        resource_type = str(resource.get("resourceType"))
        env = Env(resource, resource)
        for raw in constraints:
            if ":" in str(raw.get("element", "")):
                continue
            context = str(raw.get("context", resource_type))
            base = self._base(context)
            check = self.engine.check(Constraint.of(raw, context), base, resource_type)
            if check is None:
                continue
            for node, where in self._at(resource, context):
                if not self.engine.holds(check, node, env):
                    out.append(_failed(check.constraint, where))
        return out

    def _base(self, context: str) -> str:
        """The type of the values at element path ``context`` (for typing)."""
        if "." not in context:
            return context
        info = self._defs.element(context)
        if info is None or info.is_backbone or len(info.types) != 1:
            return self._defs.structure_path(context)
        return info.types[0]

    def _at(self, resource: dict[str, Any], context: str) -> list[tuple[Any, str]]:
        """Every value at element path ``context`` with its location."""
        steps = context.split(".")
        found: list[tuple[Any, str]] = [(resource, steps[0])]
        path = steps[0]
        for step in steps[1:]:
            info = self._defs.children(path).get(step)
            path = f"{path}.{step}"
            names = info.json_names() if info is not None else (step,)
            if info is not None and info.is_backbone:
                path = self._defs.structure_path(path)
            elif info is not None and len(info.types) == 1 and info.types[0][:1].isupper():
                path = info.types[0]
            nxt: list[tuple[Any, str]] = []
            for node, where in found:
                if not isinstance(node, dict):
                    continue
                for name in names:
                    value = node.get(name)
                    if isinstance(value, list):
                        nxt += [(v, f"{where}.{name}[{i}]") for i, v in enumerate(value)]
                    elif value is not None:
                        nxt.append((value, f"{where}.{name}"))
            found = nxt
        return found


def _failed(constraint: Constraint, where: str) -> Issue:
    return Issue(INVARIANT, f"{constraint.key}: {constraint.human}",
                 severity="warning" if constraint.severity == "warning" else "error",
                 expression=(where,))


def _contained_type(root: Any, local_id: str) -> str | None:
    """The type of the resource ``#local_id`` names among the container's ``contained``
    (None: not there, which dom-3's reverse check and ref-1 report)."""
    for item in root.get("contained", ()) if isinstance(root, dict) else ():
        if isinstance(item, dict) and item.get("id") == local_id:
            kind = item.get("resourceType")
            return kind if isinstance(kind, str) else None
    return None


def _members(expander: Expander) -> Members:
    def members(url: str) -> frozenset[Code] | None:
        try:
            return expander.members(url)
        except CannotExpand:
            return None  # SNOMED CT, LOINC... filters: not checked
    return members
