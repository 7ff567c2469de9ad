"""A small FHIRPath evaluator that finds element *locations*, for FHIRPath Patch.

It evaluates the paths parsed by :mod:`fhir_server.service.patch_fhirpath_syntax` (which
lists the supported subset) over a resource. Choice elements are found by their stem
(``Observation.value`` finds ``valueQuantity``), and the id and extensions of a primitive
(``Patient.birthDate.extension``) in its ``_birthDate`` JSON sibling.

Each result is a :class:`Node` that knows the container holding it, so the patch code
can replace or remove it in place. Function arguments it cannot use are ``BadRequest``.
:func:`bad_request` and :func:`unprocessable` build the errors of all the patch modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.definitions import Definitions, ElementInfo
from fhir_server.errors import BadRequest, Issue, Unprocessable
from fhir_server.service.patch_fhirpath_syntax import (
    Call,
    Expr,
    Index,
    Literal,
    Member,
    PathExpr,
)

PRIMITIVE_TYPES = frozenset({
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
    "instant", "integer", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt",
    "uri", "url", "uuid", "xhtml"})
# R4's open type list: every type a choice element ([x]) may take, so the JSON suffix
# of a choice can be recognised without the definitions.
_CHOICE_TYPES = (PRIMITIVE_TYPES - {"xhtml"}) | frozenset({
    "Address", "Age", "Annotation", "Attachment", "CodeableConcept", "Coding",
    "ContactPoint", "Count", "Distance", "Duration", "HumanName", "Identifier", "Money",
    "Period", "Quantity", "Range", "Ratio", "Reference", "SampledData", "Signature",
    "Timing", "ContactDetail", "Contributor", "DataRequirement", "Expression",
    "ParameterDefinition", "RelatedArtifact", "TriggerDefinition", "UsageContext",
    "Dosage", "Meta"})


def unprocessable(diagnostics: str, path: str | None = None) -> Unprocessable:
    """A 422 whose issue points at ``path`` (a FHIRPath or JSON Pointer) when given."""
    issues = [Issue(Unprocessable.code, diagnostics, expression=(path,))] if path else None
    return Unprocessable(diagnostics, issues)


def bad_request(diagnostics: str, path: str | None = None) -> BadRequest:
    """A 400 whose issue points at ``path`` when given."""
    issues = [Issue(BadRequest.code, diagnostics, expression=(path,))] if path else None
    return BadRequest(diagnostics, issues)


def type_name(suffix: str) -> str:
    """The FHIR type named by a JSON suffix (``Quantity`` → Quantity, ``DateTime`` → dateTime)."""
    lowered = suffix[:1].lower() + suffix[1:]
    return lowered if lowered in PRIMITIVE_TYPES else suffix


def _suffix(type_code: str) -> str:
    return type_code[:1].upper() + type_code[1:]


@dataclass(eq=False)
class Node:
    """One element found by a path, with where it lives.

    ``parent[prop]`` (or ``parent[prop][index]`` for array items) holds ``value``;
    ``owner`` is the node whose value is ``parent``; ``struct`` is where the
    definitions list the children of ``value`` (``Patient.contact``, ``HumanName``);
    ``stem`` is set when a choice was reached by its stem (``value`` → ``valueQuantity``).
    """

    value: Any
    parent: dict[str, Any] | None = None
    prop: str | None = None
    index: int | None = None
    owner: Node | None = None
    struct: str | None = None
    stem: str | None = None


def element_info(definitions: Definitions | None, struct: str | None,
                 key: str) -> ElementInfo | None:
    """The definition of JSON property ``key`` under ``struct``, when both are known."""
    if definitions is None or struct is None:
        return None
    return definitions.properties(struct).get(key)


def child_struct(definitions: Definitions | None, struct: str | None, key: str,
                 value: Any) -> str | None:
    """Where the children of the value of ``key`` under ``struct`` are defined."""
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return str(value["resourceType"])  # contained / Bundle.entry.resource
    if key.startswith("_"):
        return "Element"
    info = element_info(definitions, struct, key)
    if info is None:
        return None
    if info.is_backbone:
        return info.path
    if info.is_choice:
        suffix = key[len(info.name) - 3:]
        return next((t for t in info.types if _suffix(t) == suffix), None)
    return info.types[0] if len(info.types) == 1 else None


def find_shadow(node: Node) -> Node | None:
    """The ``_name`` JSON sibling holding a primitive's id and extensions, if present."""
    if node.parent is None or node.prop is None or node.prop.startswith("_"):
        return None
    key = "_" + node.prop
    found = node.parent.get(key)
    if node.index is not None:
        found = found[node.index] if isinstance(found, list) and node.index < len(found) \
            else None
    return Node(found, node.parent, key, node.index, node.owner, "Element") \
        if isinstance(found, dict) else None


def _equal(left: Any, right: Any, equivalent: bool) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right  # true is not 1
    if equivalent and isinstance(left, str) and isinstance(right, str):
        return " ".join(left.split()).casefold() == " ".join(right.split()).casefold()
    return bool(left == right)


def _truth(nodes: list[Node]) -> bool | None:
    """FHIRPath boolean evaluation: empty is unknown, a lone non-boolean is true."""
    if not nodes:
        return None
    if len(nodes) == 1 and isinstance(nodes[0].value, bool):
        return nodes[0].value
    return True


class Evaluator:
    """Evaluates parsed paths over a resource, using the definitions when given."""

    def __init__(self, definitions: Definitions | None = None) -> None:
        self.definitions = definitions

    def is_choice_key(self, key: str, stem: str, struct: str | None) -> bool:
        """Whether JSON property ``key`` is a type variant of choice element ``stem``."""
        suffix = key[len(stem):]
        if not key.startswith(stem) or not suffix[:1].isupper():
            return False
        if self.definitions is not None and struct is not None:
            children = self.definitions.children(struct)
            info = children.get(stem + "[x]")
            if info is not None:
                return suffix in {_suffix(t) for t in info.types}
            if children:
                return False  # a known structure without that choice element
        return type_name(suffix) in _CHOICE_TYPES

    def expand(self, node: Node, key: str, stem: str | None = None) -> list[Node]:
        """The items of property ``key`` of ``node`` (one node per array item)."""
        raw = node.value[key]

        def make(item: Any, index: int | None) -> Node:
            struct = child_struct(self.definitions, node.struct, key, item)
            return Node(item, node.value, key, index, node, struct, stem)

        if isinstance(raw, list):
            return [make(item, i) for i, item in enumerate(raw)]
        return [make(raw, None)]

    def children(self, node: Node, name: str) -> list[Node]:
        """``node.name``, trying the choice variants and a primitive's ``_`` sibling."""
        if not isinstance(node.value, dict):
            shadow = find_shadow(node) if name in ("id", "extension") else None
            return self.children(shadow, name) if shadow is not None else []
        if name in node.value:
            return self.expand(node, name)
        return [found for key in list(node.value)
                if not key.startswith("_") and self.is_choice_key(key, name, node.struct)
                for found in self.expand(node, key, stem=name)]

    def type_of(self, node: Node) -> str | None:
        """The FHIR type of a node's value, where it can be told."""
        if node.stem is not None and node.prop is not None:
            return type_name(node.prop[len(node.stem):])
        if isinstance(node.value, dict) and isinstance(node.value.get("resourceType"), str):
            return str(node.value["resourceType"])
        if node.struct is not None and "." not in node.struct:
            return node.struct
        return None

    def call(self, step: Call, nodes: list[Node]) -> list[Node]:
        """Apply one function to a collection."""
        name, args = step.name, step.args
        if name == "where":
            return [n for n in nodes if _truth(self.evaluate(args[0], [n])) is True]
        if name == "first":
            return nodes[:1]
        if name == "last":
            return nodes[-1:]
        if name in ("exists", "empty"):
            return [Node(bool(nodes) == (name == "exists"))]
        if name == "not":
            truth = _truth(nodes)
            return [] if truth is None else [Node(not truth)]
        if name == "extension":
            url = args[0]
            if not isinstance(url, Literal) or not isinstance(url.value, str):
                raise bad_request("extension() takes the extension URL as a string literal")
            return [ext for n in nodes for ext in self.children(n, "extension")
                    if isinstance(ext.value, dict) and ext.value.get("url") == url.value]
        target = args[0]  # ofType / as: a type name, maybe qualified (FHIR.Quantity)
        last = target.steps[-1] if isinstance(target, PathExpr) and target.steps else None
        if not isinstance(last, Member):
            raise bad_request(f"{name}() takes a type name")
        wanted = last.name.lower()
        return [n for n in nodes if (self.type_of(n) or "").lower() == wanted]

    def steps(self, steps: tuple[Member | Index | Call, ...], nodes: list[Node]) -> list[Node]:
        """Apply path steps, left to right, to a collection."""
        for step in steps:
            if isinstance(step, Member):
                nodes = [child for n in nodes for child in self.children(n, step.name)]
            elif isinstance(step, Index):
                nodes = nodes[step.index:step.index + 1]
            else:
                nodes = self.call(step, nodes)
        return nodes

    def evaluate(self, expr: Expr, focus: list[Node]) -> list[Node]:
        """Evaluate an expression against a focus collection."""
        if isinstance(expr, PathExpr):
            return self.steps(expr.steps, focus)
        if isinstance(expr, Literal):
            return [Node(expr.value)]
        if expr.op in ("and", "or"):
            left = _truth(self.evaluate(expr.left, focus))
            right = _truth(self.evaluate(expr.right, focus))
            decisive = expr.op == "or"  # true decides `or`, false decides `and`
            if decisive in (left, right):
                return [Node(decisive)]
            return [] if None in (left, right) else [Node(not decisive)]
        lefts = self.evaluate(expr.left, focus)
        rights = self.evaluate(expr.right, focus)
        if not lefts or not rights:
            return []
        equivalent = expr.op.endswith("~")
        same = len(lefts) == len(rights) and all(
            _equal(a.value, b.value, equivalent) for a, b in zip(lefts, rights, strict=True))
        return [Node(same != expr.op.startswith("!"))]
