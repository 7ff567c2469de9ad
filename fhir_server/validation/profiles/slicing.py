"""Slicing: which slice each item of a sliced element belongs to, and the slicing rules.

Discriminators supported: ``value`` and ``pattern`` (the slice's fixed[x]/pattern[x]
at the path; for an extension's ``url`` also its profile's URL), ``exists``, ``type``
(the item's type: a choice's type suffix or a resource's ``resourceType``) and
``profile`` (the item conforms to the slice's profile). Paths using functions
(``resolve()``...) match nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_server.errors import Issue
from fhir_server.validation.profiles.model import Node, Slicing
from fhir_server.validation.profiles.values import at_path, contains, equal


@dataclass(frozen=True, slots=True)
class Item:
    """One value of an element in an instance, its type (when known) and location."""

    value: Any
    type: str | None
    expression: str


#: does an item conform to the profile at a URL? (None: the profile is not known)
Conforms = Callable[[str, Item], bool | None]


def _target(slice_node: Node, path: str) -> Node | None:
    node: Node | None = slice_node
    if path in ("$this", ""):
        return node
    for name in path.removeprefix("$this.").split("."):
        node = node.child(name) if node is not None else None
    return node


def _candidates(slice_node: Node, path: str) -> list[Node]:
    """The nodes at ``path`` below a slice, through the slices met on the way too (the
    value ``code.coding.code`` of a component slice is fixed in its coding's slice)."""
    nodes = [slice_node]
    if path in ("$this", ""):
        return nodes
    for name in path.removeprefix("$this.").split("."):
        found = [n.child(name) for n in nodes]
        nodes = [m for n in found if n is not None for m in (n, *n.slices)]
    return nodes


def _expected(slice_node: Node, path: str) -> tuple[str, Any] | None:
    """What a value/pattern discriminator at ``path`` expects of this slice."""
    for target in _candidates(slice_node, path):
        if target.fixed or target.pattern:
            return target.fixed or target.pattern
    if path == "url":  # an extension slice names its definition by profile
        for type_ref in slice_node.types:
            if type_ref.code == "Extension" and type_ref.profiles:
                return "fixedUri", type_ref.profiles[0]
    return None


def matches(slice_node: Node, item: Item, slicing: Slicing, conforms: Conforms) -> bool:
    """Whether ``item`` belongs to ``slice_node`` by every discriminator."""
    for kind, path in slicing.discriminators:
        if kind in ("value", "pattern"):
            expected = _expected(slice_node, path)
            if expected is None:
                return False
            key, want = expected
            test = equal if key.startswith("fixed") else contains
            if not any(test(v, want) for v in at_path(item.value, path)):
                return False
        elif kind == "exists":
            target = _target(slice_node, path)
            if target is None:
                return False
            present = bool(at_path(item.value, path))
            if (target.min >= 1 and not present) or (target.max == 0 and present):
                return False
        elif kind == "type":
            codes = {t.code for t in (_target(slice_node, path) or slice_node).types}
            if path in ("$this", ""):
                found = item.type or (item.value.get("resourceType")
                                      if isinstance(item.value, dict) else None)
                if found not in codes:
                    return False
            else:
                return False
        elif kind == "profile":
            if path not in ("$this", ""):
                return False
            urls = [p for t in slice_node.types for p in t.profiles]
            if not urls or not all(conforms(url, item) for url in urls):
                return False
        else:
            return False
    return True


def assign(node: Node, items: Sequence[Item], conforms: Conforms,
           profile_url: str) -> tuple[list[list[Item]], list[Issue]]:
    """The items of each slice of ``node`` (in slice order) and the rules' issues."""
    slicing = node.slicing
    assert slicing is not None
    per_slice: list[list[Item]] = [[] for _ in node.slices]
    issues: list[Issue] = []
    last = -1
    unmatched_seen = False
    for item in items:
        found = next((i for i, s in enumerate(node.slices)
                      if matches(s, item, slicing, conforms)), None)
        if found is None:
            unmatched_seen = True
            if slicing.rules == "closed":
                issues.append(Issue("structure", f"{node.label}: the value matches none "
                                    f"of the slices, and the slicing is closed "
                                    f"(profile {profile_url})",
                                    expression=(item.expression,)))
            continue
        if slicing.ordered and found < last:
            issues.append(Issue("structure", f"{node.label}: slice "
                                f"{node.slices[found].slice_name} is out of order "
                                f"(profile {profile_url})", expression=(item.expression,)))
        if slicing.rules == "openAtEnd" and unmatched_seen:
            issues.append(Issue("structure", f"{node.label}: values outside the slices "
                                f"must come last (profile {profile_url})",
                                expression=(item.expression,)))
        last = max(last, found)
        per_slice[found].append(item)
    return per_slice, issues
