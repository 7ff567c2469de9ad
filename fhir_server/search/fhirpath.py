"""Fast, typed value extraction for SearchParameter expressions.

:class:`Extractor` compiles a SearchParameter ``expression`` for one resource type into
a function ``resource -> list[Node]``. The union parts that apply to the type (those
starting with it, with ``(Type.``, or with ``Resource.``/``DomainResource.``) are parsed;
the common shapes (dotted paths, choice types with ``as``, ``where(resolve() is T)``,
``where(x = 'lit')``, ``[0]``/``first()``, ``exists()``) become plain dictionary walks
typed from the definitions (:mod:`fhirpath_plan`); every other part is evaluated by
fhirpathpy, compiled once (:mod:`fhirpath_fallback`).

Deliberate differences from plain fhirpathpy evaluation (all tested):

* ``resolve()`` does not fetch anything: ``where(resolve() is T)`` keeps References whose
  ``reference`` names type ``T`` (``T/id``, ``T/id/_history/v``, ``http://x/T/id``), whose
  ``#id`` names a contained ``T``, or - for ``urn:uuid:``, logical and identifier-only
  references - whose ``type`` is ``T`` (fhirpathpy has no ``resolve()`` at all);
* ``as`` works item by item like ``ofType`` (fhirpathpy raises on several items, e.g.
  ``Observation.component.value as Quantity`` with two components);
* ``Resource.x`` and ``DomainResource.x`` apply to every resource type (fhirpathpy
  returns nothing when the root type is a supertype);
* System type names in ``as()`` mean the FHIR primitive (``as(DateTime)`` = ``dateTime``);
* ``null`` array slots and extension-only primitives (``_birthDate``) are no values, and
  values of the wrong JSON shape for their type (a string where a HumanName belongs) are
  skipped, so malformed data yields fewer nodes instead of errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirpathpy.models import models

from fhir_server.definitions import Definitions
from fhir_server.search.base import Node
from fhir_server.search.fhirpath_fallback import Fallback
from fhir_server.search.fhirpath_ops import Runner, union_runner
from fhir_server.search.fhirpath_parse import PathExpr, parse_part, root_name, split_union
from fhir_server.search.fhirpath_plan import Branch, Planner

#: resource (parsed JSON) -> the values an expression selects
Extraction = Callable[[dict[str, Any]], list[Node]]
#: (composite context node value, resource) -> the values a component selects
ComponentExtraction = Callable[[Any, dict[str, Any]], list[Node]]

class Extractor:
    """Compiles SearchParameter expressions into typed extraction functions.

    Build once from the :class:`~fhir_server.definitions.Definitions`; compiling does no
    I/O and the returned functions are pure (safe to share between threads, except that
    fhirpathpy fallbacks inherit whatever thread safety fhirpathpy has).
    """

    def __init__(self, definitions: Definitions) -> None:
        self._defs = definitions
        model: dict[str, Any] = models["r4"]
        self._planner = Planner(definitions, model["type2Parent"])
        self._fallback = Fallback(definitions, self._planner, model)
        # Names that make a part's root a type filter (primitive names never do).
        self._type_names = (definitions.resource_types | definitions.abstract_types
                            | definitions.complex_types)

    # -- which parts apply ------------------------------------------------------------

    def applies(self, part: str, resource_type: str) -> bool:
        """Whether the union part ``part`` selects anything for ``resource_type``."""
        root = root_name(part)
        if root in (resource_type, "Resource"):
            return True
        if root == "DomainResource":
            # Bundle, Binary and Parameters are the resources without a narrative.
            return self._defs.element(f"{resource_type}.text") is not None
        # A part rooted at another type is for that type; anything else (a relative
        # path, %resource) is evaluated on whatever resource it is given.
        return root not in self._type_names

    def applicable_parts(self, expression: str, resource_type: str) -> list[str]:
        """The union parts of ``expression`` that apply to ``resource_type``."""
        return [p for p in split_union(expression) if self.applies(p, resource_type)]

    def plan(self, expression: str, resource_type: str) -> list[tuple[str, bool]]:
        """Each applicable part with whether it takes the fast path (for reports/tests)."""
        return [(part, self._fast_part(part, resource_type) is not None)
                for part in self.applicable_parts(expression, resource_type)]

    def plan_component(self, expression: str, context_type_path: str) -> list[tuple[str, bool]]:
        """Each part of a component expression with whether it takes the fast path."""
        contexts = [c for c in split_union(context_type_path) if "(" not in c]
        return [(part, self._fast_component(part, contexts) is not None)
                for part in split_union(expression)]

    # -- compiling ----------------------------------------------------------------------

    def compile(self, expression: str, resource_type: str) -> Extraction | None:
        """The extraction function of ``expression`` for resources of ``resource_type``.

        None when no union part applies to the type. The function never raises: odd
        data yields fewer nodes.
        """
        parts = self.applicable_parts(expression, resource_type)
        if not parts:
            return None
        # A runner called with the resource alone evaluates on it (no wrapper call).
        if len(parts) == 1:
            return self._fast_part(parts[0], resource_type) or self._fallback.compile(parts[0])
        # Plain paths of a union are walked together (shared prefixes, one call); the
        # union runner then removes repeated values as FHIRPath's ``|`` does.
        root = self._planner.resource_branch(resource_type)
        merged: list[Branch] = []
        runners: list[Runner] = []
        for part in parts:
            parsed = parse_part(part)
            branches = self._planner.branches(parsed, root) if parsed is not None else None
            if branches is not None:
                merged += branches
            else:
                runners.append(self._fast_part(part, resource_type)
                               or self._fallback.compile(part))
        if merged:
            runners.insert(0, self._planner.build(merged, False))
        return union_runner(runners)

    def compile_component(self, expression: str, context_type_path: str) -> ComponentExtraction:
        """The extraction function of a composite component ``expression``.

        ``context_type_path`` is the element path of the composite's context nodes
        (``Observation.component``, ``MolecularSequence.variant``); a union of paths such
        as ``Observation | Observation.component`` (the composite's own expression) is
        accepted, and the first path under which the component can be typed is used.
        The function takes the context node's value and the resource (for ``%resource``).
        """
        contexts = [c for c in split_union(context_type_path) if "(" not in c]
        runners: list[Runner] = []
        for part in split_union(expression):
            runner = self._fast_component(part, contexts)
            if runner is None:
                base = self._fhirpathpy_base(contexts[0]) if contexts else None
                runner = self._fallback.compile(part, base)
            runners.append(runner)
        if not runners:
            return _no_component
        return runners[0] if len(runners) == 1 else union_runner(runners)

    def _fhirpathpy_base(self, path: str) -> str:
        """How fhirpathpy must be told the context's type: a type name, else the path.

        fhirpathpy knows choice elements by the path within their type
        (``UsageContext.value``), so a context of a data type must be named by that type.
        """
        branch = self._planner.context_branch(path)
        if branch is None or branch.type is None or branch.type in ("BackboneElement",
                                                                     "Element"):
            return path
        return branch.type

    def _fast_part(self, part: str, resource_type: str) -> Runner | None:
        """The fast runner of one applicable part, or None to fall back."""
        parsed = parse_part(part)
        if parsed is None:
            return None
        root = self._planner.resource_branch(resource_type)
        return self._planner.runner(parsed, root, parsed.root == "resource")

    def _fast_component(self, part: str, contexts: list[str]) -> Runner | None:
        """The fast runner of one component part under the first context that types it."""
        parsed: PathExpr | None = parse_part(part, relative=True)
        if parsed is None:
            return None
        for context in contexts:
            if parsed.root == "resource":
                root: Branch | None = self._planner.resource_branch(context.split(".")[0])
            else:
                root = self._planner.context_branch(context)
            if root is None:
                continue
            runner = self._planner.runner(parsed, root, parsed.root == "resource")
            if runner is not None:
                return runner
        return None


def _no_component(context: Any, resource: Any = None) -> list[Node]:
    """The extraction of an empty component expression."""
    return []
