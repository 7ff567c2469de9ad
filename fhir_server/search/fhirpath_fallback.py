"""The slow path: fhirpathpy for union parts outside the fast subset.

Each part is compiled once with the R4 model (so choice elements are typed) and asked
for raw results, whose ``path`` carries fhirpathpy's idea of the type. ``resolve()`` is
supplied (fhirpathpy has none): it returns a stub of the referenced resource type, which
is all ``resolve() is T`` needs. Any error - in compiling or evaluating - yields no
values: a malformed resource or exotic expression must not break a write.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import FP_DateTime, FP_Quantity, FP_Time, ResourceNode

from fhir_server.definitions import Definitions
from fhir_server.search.base import Node
from fhir_server.search.fhirpath_ops import Runner, reference_type
from fhir_server.search.fhirpath_plan import SYSTEM_TYPES, Planner

# fhirpathpy's node factory is untyped; give it a type once.
_create_node: Callable[..., Any] = ResourceNode.create_node


class Fallback:
    """Compiles parts with fhirpathpy and turns their results into typed nodes."""

    def __init__(self, definitions: Definitions, planner: Planner, model: dict[str, Any]) -> None:
        self._defs = definitions
        self._planner = planner
        self._model = model
        self._types = (definitions.primitive_types | definitions.complex_types
                       | definitions.resource_types | definitions.abstract_types)
        resolve: dict[str, Any] = {"fn": self._resolve}
        self._options: dict[str, Any] = {
            "returnRawData": True, "userInvocationTable": {"resolve": resolve}}

    def _resolve(self, inputs: list[Any]) -> list[Any]:
        """fhirpathpy ``resolve()``: a typed stub per reference whose type is known.

        Contained (``#id``) references are not resolved here: the user function does
        not see the resource (the fast path resolves them).
        """
        out: list[Any] = []
        for item in inputs:
            kind = reference_type(item, None, self._defs.resource_types)
            if kind is not None:
                out.append(_create_node({"resourceType": kind}))
        return out

    def compile(self, expression: str, base_path: str | None = None) -> Runner:
        """A runner evaluating ``expression`` on the context node (typed as ``base_path``).

        Without ``base_path`` the context is the resource itself.
        """
        try:
            compiled: Callable[..., list[Any]] = fhirpathpy.compile(
                expression, model=self._model, options=self._options)
        except Exception:  # an expression fhirpathpy cannot parse selects nothing
            return _nothing

        def run(context: Any, resource: Any = None) -> list[Node]:
            if resource is None:
                resource = context
            root = context if base_path is None else _create_node(context, base_path)
            try:
                result = compiled(root, {"resource": resource, "rootResource": resource})
            except Exception:  # odd data must not break indexing
                return []
            return self.to_nodes(result)
        return run

    def to_nodes(self, result: Any) -> list[Node]:
        """Typed nodes for fhirpathpy raw results (extension-only primitives dropped)."""
        out: list[Node] = []
        for item in result if isinstance(result, list) else [result]:
            if isinstance(item, list):
                out += self.to_nodes(item)
                continue
            node = self._node(item)
            if node is not None:
                out.append(node)
        return out

    def _node(self, item: Any) -> Node | None:
        """One result as a node, or None when it is no value."""
        if isinstance(item, ResourceNode):
            data = item.data
            if data is None or (isinstance(data, dict) and list(data) == ["extension"]):
                return None
            if isinstance(data, (FP_DateTime, FP_Time, FP_Quantity)):
                return self._node(data)
            return Node(data, self._type(item.path, data))
        if isinstance(item, FP_Quantity):
            return Node({"value": item.value, "unit": item.unit.strip("'")}, "Quantity")
        if isinstance(item, FP_Time):
            return Node(str(item), "time")
        if isinstance(item, FP_DateTime):
            text = str(item)
            return Node(text, "dateTime" if "T" in text else "date")
        if item is None:
            return None
        return Node(item, _infer(item))

    def _type(self, path: Any, data: Any) -> str:
        """The FHIR type of a fhirpathpy node from its ``path`` and data."""
        if isinstance(data, dict) and isinstance(data.get("resourceType"), str):
            return str(data["resourceType"])
        if not isinstance(path, str):
            return _infer(data)
        if path.startswith("System."):
            return SYSTEM_TYPES.get(path[7:], _infer(data))
        if path in self._types:
            return path
        return self._planner.element_type(path) or _infer(data)


def _nothing(context: Any, resource: Any = None) -> list[Node]:
    """The runner of an expression that cannot be compiled."""
    return []


def _infer(value: Any) -> str:
    """A FHIR type guessed from a JSON value alone."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, (float, Decimal)):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return str(value["resourceType"])
    return "Element"
