"""Snapshot generation: a differential resolved against its base into a full snapshot.

Handles the differentials profiles are commonly made of: constraining cardinality,
types, fixed[x]/pattern[x] values and bindings, adding constraints, and slicing
(slices, their children, re-constrained children of data types: ``Encounter.period.start``
unfolds ``Period`` under ``Encounter.period``), on a base resource or on another
profile. Choice elements may be named by type (``Observation.valueQuantity``): that
restricts ``value[x]`` to the type (the R4 rule). Re-slicing (``a:b/c``) is not supported and is
reported as an unknown element.

Besides the snapshot, :func:`generate` answers which element ids the profile itself (or
a base profile) changed, and whose bindings (``id#binding``): only those need checking
on top of the base validation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from fhir_server.validation.profiles.loader import CORE_PREFIX, ProfileError

Element = dict[str, Any]
#: a base's snapshot and the ids its profile chain changed (empty for a base type)
Resolved = tuple[list[Element], frozenset[str]]

_INLINE = frozenset({"BackboneElement", "Element"})
#: in the changed ids, ``id#binding`` says the profile chain set that element's binding
#: (a base type's own binding is the base validation's business)
BINDING_MARK = "#binding"


def _split(element_id: str) -> tuple[str, str]:
    """``Patient.identifier:mrn.system`` -> (``Patient.identifier:mrn``, ``system``)."""
    parent, _, last = element_id.rpartition(".")
    return parent, last


class _Builder:
    """One snapshot under construction: an ordered element list with an id index."""

    def __init__(self, url: str, elements: list[Element],
                 types: Callable[[str], list[Element] | None]) -> None:
        self.url = url
        self.elements = elements
        self.types = types
        self.renamed: dict[str, str] = {}  # ``X.valueQuantity`` -> ``X.value[x]``
        self.changed: set[str] = set()

    def _position(self, element_id: str) -> int | None:
        for i, element in enumerate(self.elements):
            if element["id"] == element_id:
                return i
        return None

    def _subtree_end(self, position: int) -> int:
        """Index after the element at ``position``, its children and its slices."""
        element_id = self.elements[position]["id"]
        end = position + 1
        while end < len(self.elements) and self.elements[end]["id"].startswith(
                (element_id + ".", element_id + ":")):
            end += 1
        return end

    def _has_children(self, position: int) -> bool:
        nxt = position + 1
        return nxt < len(self.elements) and \
            self.elements[nxt]["id"].startswith(self.elements[position]["id"] + ".")

    def _rebased(self, source: list[Element], old_id: str, old_path: str,
                 new: Element) -> list[Element]:
        out = []
        for element in source:
            copied = copy.deepcopy(element)
            copied["id"] = new["id"] + element["id"][len(old_id):]
            copied["path"] = new["path"] + element["path"][len(old_path):]
            out.append(copied)
        return out

    def _unfold(self, position: int) -> None:
        """Insert the children of the element at ``position`` (from its slice's base
        element, its content reference or its data type), unless it has some."""
        if self._has_children(position):
            return
        element = self.elements[position]
        children: list[Element] = []
        if "sliceName" in element:
            sliced = element["id"].rpartition(":")[0]
            start = self._position(sliced)
            sliced_types = {t.get("code") for t in
                            (self.elements[start].get("type") or ())} if start is not None else ()
            # a type slice of a choice (``value[x]:valueQuantity``) unfolds its own type
            if start is not None and (len(sliced_types) == 1 or self._has_children(start)):
                self._unfold(start)
                prefix = sliced + "."
                # the sliced element's own children (not its slices, nor theirs)
                source = [e for e in self.elements[start + 1:self._subtree_end(start)]
                          if e["id"].startswith(prefix)]
                children = self._rebased(source, sliced, self.elements[start]["path"],
                                         element)
                # unfolding the sliced element may have moved this one down
                position = self.elements.index(element)
        if not children and "contentReference" in element:
            target = element["contentReference"].lstrip("#")
            start = self._position(target)
            if start is not None:
                source = [e for e in self.elements[start + 1:self._subtree_end(start)]
                          if e["id"].startswith(target + ".") and ":" not in e["id"]]
                children = self._rebased(source, target, target, element)
        if not children:
            codes = {t.get("code") for t in element.get("type") or ()}
            profiles = [p for t in element.get("type") or () for p in t.get("profile") or ()]
            if len(codes) != 1 or codes <= _INLINE:
                raise ProfileError(f"{self.url}: cannot unfold {element['id']} "
                                   f"(types {sorted(c for c in codes if c)})")
            code = next(iter(codes))
            typed = (self.types(profiles[0]) if len(profiles) == 1 else None) \
                or self.types(CORE_PREFIX + code)
            if typed is None:
                raise ProfileError(f"{self.url}: no definition of type {code}")
            root = typed[0]
            children = self._rebased(typed[1:], root["id"], root["path"], element)
        self.elements[position + 1:position + 1] = children

    def locate(self, element_id: str) -> int:
        """The position of ``element_id``, creating slices and unfolding as needed."""
        for old, new in self.renamed.items():
            if element_id == old or element_id.startswith(old + "."):
                element_id = new + element_id[len(old):]
        found = self._position(element_id)
        if found is not None:
            return found
        parent_id, last = _split(element_id)
        if not parent_id:
            raise ProfileError(f"{self.url}: element {element_id} is not in its base")
        name, _, slice_name = last.partition(":")
        if slice_name:
            if "/" in slice_name:
                raise ProfileError(f"{self.url}: re-slicing ({element_id}) is not supported")
            sliced = self.locate(f"{parent_id}.{name}")
            return self._new_slice(sliced, element_id, slice_name)
        parent = self.locate(parent_id)
        self._unfold(parent)
        found = self._position(element_id)
        if found is not None:
            return found
        return self._typed_choice(parent_id, last, element_id)

    def _new_slice(self, sliced: int, element_id: str, slice_name: str) -> int:
        base = self.elements[sliced]
        new = {k: copy.deepcopy(v) for k, v in base.items() if k != "slicing"}
        new["id"] = element_id
        new["sliceName"] = slice_name
        at = self._subtree_end(sliced)
        self.elements.insert(at, new)
        return at

    def _typed_choice(self, parent_id: str, last: str, element_id: str) -> int:
        """``valueQuantity`` names ``value[x]`` restricted to Quantity (R4's rule for a
        differential naming a choice by type; the publisher's snapshots do the same)."""
        for at, element in enumerate(self.elements):
            stem_id = element["id"]
            if not (stem_id.endswith("[x]") and _split(stem_id)[0] == parent_id):
                continue
            stem = _split(stem_id)[1][:-3]
            suffix = last[len(stem):] if last.startswith(stem) else ""
            kept = [t for t in element.get("type") or ()
                    if suffix and t["code"][:1].upper() + t["code"][1:] == suffix]
            if kept:
                element["type"] = kept
                self.renamed[element_id] = stem_id
                self.changed.add(stem_id)
                return at
        raise ProfileError(f"{self.url}: element {element_id} is not in its base")

    def merge(self, diff: Element) -> None:
        """Lay one differential element over its snapshot element."""
        element_id = diff.get("id") or diff["path"] + (
            f":{diff['sliceName']}" if "sliceName" in diff else "")
        if element_id == self.elements[0]["id"]:
            target = self.elements[0]
        else:
            target = self.elements[self.locate(element_id)]
        for key, value in diff.items():
            if key in ("id", "path"):
                continue
            if key == "constraint":
                have = {c.get("key") for c in target.get("constraint") or ()}
                target.setdefault("constraint", []).extend(
                    {"source": self.url, **copy.deepcopy(c)}
                    for c in value if c.get("key") not in have)
            elif key.startswith(("fixed", "pattern")):
                for old in [k for k in target if k.startswith(("fixed", "pattern"))]:
                    del target[old]
                target[key] = copy.deepcopy(value)
            else:
                target[key] = copy.deepcopy(value)
        self.changed.add(target["id"])
        if "binding" in diff:
            self.changed.add(target["id"] + BINDING_MARK)


def generate(sd: Mapping[str, Any], resolve: Callable[[str], Resolved | None],
             types: Callable[[str], list[Element] | None]) -> Resolved:
    """The snapshot of ``sd`` and the ids its profile chain changed.

    ``resolve`` gives a base's snapshot (a copy, changed here) by canonical URL;
    ``types`` a data type's (or type profile's) snapshot elements, not to be changed.
    The differential is what counts; a published snapshot is used only when there is
    no differential or it cannot be resolved here.
    """
    url = str(sd.get("url"))
    base_url = sd.get("baseDefinition")
    if not base_url:
        raise ProfileError(f"{url}: no baseDefinition")
    base = resolve(base_url.split("|", 1)[0])
    if base is None:
        raise ProfileError(f"{url}: its base {base_url} is not known")
    elements, base_changed = base
    differential = (sd.get("differential") or {}).get("element") or []
    published = (sd.get("snapshot") or {}).get("element")
    try:
        if not differential:
            raise ProfileError(f"{url}: no differential")
        if not elements or elements[0].get("path") != sd.get("type"):
            raise ProfileError(f"{url}: base {base_url} is not of type {sd.get('type')}")
        builder = _Builder(url, elements, types)
        for diff in differential:
            builder.merge(diff)
        return builder.elements, frozenset(base_changed | builder.changed)
    except ProfileError:
        # A published snapshot we cannot reproduce is taken as it is, every element
        # checked (we cannot tell which ones its profile changed).
        if not published:
            raise
        snapshot = copy.deepcopy(published)
        ids = [e["id"] for e in snapshot if "id" in e]
        return snapshot, frozenset([*ids, *(i + BINDING_MARK for i in ids)])
