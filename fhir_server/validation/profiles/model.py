"""Compiled profiles: a snapshot turned into a tree of element nodes.

Each node keeps what validation reads (cardinality, allowed types, fixed/pattern value,
binding, slicing, own constraints) and whether the profile chain changed it: nodes
the profile left as in the base are checked by the base validation already, and a
subtree with nothing changed in it is never walked (``relevant``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fhir_server.validation.profiles.loader import CORE_PREFIX
from fhir_server.validation.profiles.snapshot import BINDING_MARK


@dataclass(frozen=True, slots=True)
class TypeRef:
    """One ``ElementDefinition.type``: its code, profiles and target profiles."""

    code: str
    profiles: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Slicing:
    """``ElementDefinition.slicing``: discriminators as (type, path), ordered, rules."""

    discriminators: tuple[tuple[str, str], ...]
    ordered: bool
    rules: str


@dataclass(eq=False, slots=True)
class Node:
    """One element of a profile's snapshot."""

    id: str
    path: str
    name: str  # the last path segment: ``identifier``, ``value[x]``
    min: int
    max: int | None  # None: unbounded
    types: tuple[TypeRef, ...]
    slice_name: str | None = None
    fixed: tuple[str, Any] | None = None  # (``fixedUri``, value)
    pattern: tuple[str, Any] | None = None
    binding: tuple[str, str] | None = None  # (strength, value set URL)
    slicing: Slicing | None = None
    changed: bool = False
    children: list[Node] = field(default_factory=list)
    slices: list[Node] = field(default_factory=list)
    relevant: bool = False
    #: the children with something changed in them: what the walker visits
    walked: tuple[Node, ...] = ()

    @property
    def label(self) -> str:
        """How diagnostics name the element: ``Patient.identifier:mrn``."""
        return self.path + (f":{self.slice_name}" if self.slice_name else "")

    def child(self, name: str) -> Node | None:
        """The child element named ``name`` (``value`` also finds ``value[x]``)."""
        for node in self.children:
            if node.name == name or node.name == name + "[x]":
                return node
        return None


@dataclass(frozen=True, slots=True)
class Profile:
    """A compiled profile: its canonical URL, the type it constrains and its tree."""

    url: str
    type: str
    root: Node
    #: constraints (invariants) the profile chain adds, each with ``context``: the path
    #: of the element it is on (``Patient.name``), for the FHIRPath evaluator
    constraints: tuple[dict[str, Any], ...] = ()


def _value_key(element: dict[str, Any], prefix: str) -> tuple[str, Any] | None:
    for key, value in element.items():
        if key.startswith(prefix) and key[len(prefix):len(prefix) + 1].isupper():
            return key, value
    return None


def _types(element: dict[str, Any]) -> tuple[TypeRef, ...]:
    return tuple(TypeRef(str(t.get("code", "")), tuple(t.get("profile") or ()),
                         tuple(t.get("targetProfile") or ()))
                 for t in element.get("type") or ())


def _node(element: dict[str, Any], changed: bool, bound: bool) -> Node:
    binding = (element.get("binding") or {}) if bound else {}
    slicing = element.get("slicing")
    max_raw = element.get("max", "*")
    return Node(
        id=element["id"], path=element["path"], name=element["path"].rsplit(".", 1)[-1],
        min=int(element.get("min", 0)), max=None if max_raw == "*" else int(max_raw),
        types=_types(element), slice_name=element.get("sliceName"),
        fixed=_value_key(element, "fixed"), pattern=_value_key(element, "pattern"),
        binding=(str(binding["strength"]), str(binding["valueSet"]).split("|", 1)[0])
        if binding.get("valueSet") and binding.get("strength") else None,
        slicing=Slicing(tuple((str(d.get("type")), str(d.get("path")))
                              for d in slicing.get("discriminator") or ()),
                        bool(slicing.get("ordered", False)), str(slicing.get("rules", "open")))
        if slicing else None,
        changed=changed)


def _mark(node: Node) -> bool:
    relevant = node.changed
    for sub in (*node.children, *node.slices):
        relevant = _mark(sub) or relevant
    node.relevant = relevant
    node.walked = tuple(child for child in node.children if child.relevant)
    return relevant


def own_constraints(elements: Iterable[dict[str, Any]], url: str,
                    core_types: frozenset[str]) -> tuple[dict[str, Any], ...]:
    """Constraints a profile added: their ``source`` is set (snapshot generation sets it
    to the profile adding them) and is not a base type's."""
    out = []
    for element in elements:
        for constraint in element.get("constraint") or ():
            source = str(constraint.get("source") or "")
            if not source or (source.startswith(CORE_PREFIX)
                              and source[len(CORE_PREFIX):] in core_types):
                continue
            out.append({**constraint, "source": source, "context": element["path"],
                        "element": element.get("id", element["path"])})
    return tuple(out)


def compile_profile(url: str, type_name: str, elements: list[dict[str, Any]],
                    changed: frozenset[str], core_types: frozenset[str]) -> Profile:
    """Build the node tree of one snapshot."""
    nodes: dict[str, Node] = {}
    root: Node | None = None
    for element in elements:
        node = _node(element, element["id"] in changed,
                     element["id"] + BINDING_MARK in changed)
        nodes[node.id] = node
        parent_id, _, last = node.id.rpartition(".")
        if not parent_id:
            root = node
            continue
        name, _, slice_name = last.partition(":")
        if slice_name:
            owner = nodes.get(f"{parent_id}.{name}")
            if owner is not None:
                owner.slices.append(node)
        else:
            parent = nodes.get(parent_id)
            if parent is not None:
                parent.children.append(node)
    if root is None:
        raise ValueError(f"{url}: empty snapshot")
    _mark(root)
    return Profile(url, type_name, root, own_constraints(elements, url, core_types))
