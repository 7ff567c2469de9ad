"""The element walker: one resource against one compiled profile.

Only what the profile chain changed is checked (the rest is the base validation's):
cardinality (of slices too), the types a choice may take, fixed[x] and pattern[x]
values, bindings (required: an error; extensible and preferred: a warning), reference
targets (when the target's type can be told from the reference and every target
profile is known), the profiles of data types and extensions that are known, and
slicing (see :mod:`fhir_server.validation.profiles.slicing`). ``mustSupport`` is not
checked: it is a promise about what a system handles, not about an instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir_server.errors import Issue
from fhir_server.validation.profiles.bindings import Bindings
from fhir_server.validation.profiles.loader import CORE_PREFIX, canonical
from fhir_server.validation.profiles.model import Node, Profile
from fhir_server.validation.profiles.slicing import Item, assign
from fhir_server.validation.profiles.values import contains, equal

_RESOURCE = frozenset({"Resource", "DomainResource"})
_SHOWN = 60
_DEPTH = 8  # profiles of data types within profiles, no deeper (a cycle guard)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


class Walker:
    """Checks instances against the compiled profiles it knows by URL."""

    def __init__(self, profiles: Mapping[str, Profile], type_codes: Mapping[str, str],
                 resource_types: frozenset[str], bindings: Bindings) -> None:
        self._profiles = profiles
        #: choice suffix -> type code: ``Quantity`` -> ``Quantity``, ``String`` -> ``string``
        self._types = type_codes
        self._resource_types = resource_types
        self._bindings = bindings

    def check(self, profile: Profile, value: dict[str, Any], expression: str,
              depth: int = 0) -> list[Issue]:
        """Every issue of ``value`` (at ``expression``) against ``profile``."""
        issues: list[Issue] = []
        if depth <= _DEPTH:
            self._node(profile, profile.root, value, expression, issues, depth)
        return issues

    def conforms(self, url: str, item: Item, depth: int = 0) -> bool | None:
        """Whether ``item`` conforms to the profile at ``url`` (None: not known)."""
        profile = self._profiles.get(canonical(url))
        if profile is None or not isinstance(item.value, dict):
            return None
        return not any(i.severity == "error" for i in
                       self.check(profile, item.value, item.expression, depth + 1))

    def _node(self, profile: Profile, node: Node, value: dict[str, Any], expression: str,
              issues: list[Issue], depth: int) -> None:
        for child in node.walked:
            self._element(profile, child, self._items(child, value, expression),
                          expression, issues, depth)

    def _items(self, node: Node, value: dict[str, Any], expression: str) -> list[Item]:
        name = node.name
        if name.endswith("[x]"):
            stem = name[:-3]
            out = []
            for key, item in value.items():
                code = self._types.get(key[len(stem):]) if key.startswith(stem) else None
                if code is not None:
                    out.append(Item(item, code, f"{expression}.{key}"))
                elif key.startswith("_" + stem) and key[1:] not in value:
                    code = self._types.get(key[1 + len(stem):])
                    if code is not None:  # a primitive with extensions only
                        out.append(Item(None, code, f"{expression}.{key[1:]}"))
            return out
        found, extended = value.get(name), value.get("_" + name)
        if found is None and extended is None:
            return []
        code = node.types[0].code if len(node.types) == 1 else None
        if isinstance(found, list) or isinstance(extended, list):
            values = found if isinstance(found, list) else []
            count = max(len(values), len(extended) if isinstance(extended, list) else 0)
            return [self._item(values[i] if i < len(values) else None, code,
                               f"{expression}.{name}[{i}]") for i in range(count)]
        return [self._item(found, code, f"{expression}.{name}")]

    @staticmethod
    def _item(value: Any, code: str | None, expression: str) -> Item:
        if code in _RESOURCE and isinstance(value, dict):
            code = str(value.get("resourceType"))
        return Item(value, code, expression)

    def _element(self, profile: Profile, node: Node, items: list[Item], parent: str,
                 issues: list[Issue], depth: int) -> None:
        if node.changed:
            where = (f"{parent}.{node.name.removesuffix('[x]')}",)
            count = len(items)
            if count < node.min:
                issues.append(Issue(
                    "required", f"{node.label}: at least {node.min} required, {count} found "
                    f"(profile {profile.url})", expression=where))
            if node.max is not None and count > node.max:
                issues.append(Issue(
                    "structure", f"{node.label}: at most {node.max} allowed, {count} found "
                    f"(profile {profile.url})", expression=where))
            for item in items:
                self._value(profile, node, item, issues, depth)
        if node.slicing is not None and node.slices:
            per_slice, found = assign(
                node, items, lambda url, item: self.conforms(url, item, depth), profile.url)
            issues.extend(found)
            for slice_node, matched in zip(node.slices, per_slice, strict=True):
                if slice_node.relevant:
                    self._element(profile, slice_node, matched, parent, issues, depth)
        if node.walked:
            for item in items:
                if isinstance(item.value, dict):
                    self._node(profile, node, item.value, item.expression, issues, depth)

    def _value(self, profile: Profile, node: Node, item: Item, issues: list[Issue],
               depth: int) -> None:
        where = (item.expression,)
        codes = [t.code for t in node.types]
        if node.name.endswith("[x]") and codes and item.type not in codes:
            issues.append(Issue("structure", f"{node.label}: type {item.type} is not allowed "
                                f"here (allowed: {', '.join(codes)}; profile {profile.url})",
                                expression=where))
            return
        value = item.value
        if value is None:
            return  # a primitive's extensions only: nothing to compare
        if node.fixed is not None and not equal(value, node.fixed[1]):
            issues.append(Issue("value", f"{node.label}: must be exactly "
                                f"{_show(node.fixed[1])}, not {_show(value)} "
                                f"(profile {profile.url})", expression=where))
        if node.pattern is not None and not contains(value, node.pattern[1]):
            issues.append(Issue("value", f"{node.label}: must match the pattern "
                                f"{_show(node.pattern[1])} (profile {profile.url})",
                                expression=where))
        if node.binding is not None:
            self._binding(profile, node, value, where, issues)
        for type_ref in node.types:
            if item.type is not None and type_ref.code != item.type:
                continue
            if type_ref.targets and isinstance(value, dict):
                self._reference(profile, node, type_ref.targets, value, where, issues)
            for url in type_ref.profiles:
                known = self._profiles.get(canonical(url))
                if known is not None and known is not profile and isinstance(value, dict):
                    issues.extend(self.check(known, value, item.expression, depth + 1))

    def _binding(self, profile: Profile, node: Node, value: Any, where: tuple[str],
                 issues: list[Issue]) -> None:
        assert node.binding is not None
        strength, url = node.binding
        if strength not in ("required", "extensible", "preferred"):
            return
        if self._bindings.member(url, value) is False:
            issues.append(Issue(
                "code-invalid", f"{node.label}: the value is not in the value set {url} "
                f"({strength} binding; profile {profile.url})",
                severity="error" if strength == "required" else "warning", expression=where))

    def _target_type(self, url: str) -> str | None:
        url = canonical(url)
        if url.startswith(CORE_PREFIX):
            name = url[len(CORE_PREFIX):]
            if name in self._resource_types or name in _RESOURCE:
                return name
        known = self._profiles.get(url)
        return known.type if known is not None else None

    def _reference(self, profile: Profile, node: Node, targets: tuple[str, ...],
                   value: dict[str, Any], where: tuple[str], issues: list[Issue]) -> None:
        target = None
        reference = value.get("reference")
        if isinstance(reference, str) and not reference.startswith(("#", "urn:")):
            parts = reference.split("/")
            if len(parts) >= 4 and parts[-2] == "_history":
                parts = parts[:-2]
            if len(parts) >= 2 and parts[-2] in self._resource_types:
                target = parts[-2]
        elif isinstance(value.get("type"), str):
            target = value["type"]
        if target is None:
            return
        allowed = {self._target_type(t) for t in targets}
        if None in allowed or allowed & _RESOURCE:
            return  # a target profile we do not know: cannot rule the reference out
        if target not in allowed:
            issues.append(Issue(
                "structure", f"{node.label}: a reference to {target} is not allowed here "
                f"(allowed: {', '.join(sorted(str(a) for a in allowed))}; "
                f"profile {profile.url})", expression=where))
