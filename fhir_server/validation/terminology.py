"""Expansions of the value sets used by required bindings, from ``valuesets.json``.

Only what can be expanded from the shipped CodeSystems is expanded: whole complete code
systems, enumerated concepts, ``is-a``/``descendent-of`` filters and included value
sets. Anything else (external systems such as SNOMED CT or UCUM, other filters) leaves
the value set unexpanded, and its binding is then not enforced.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

VALUESETS_FILE = "valuesets.json"

Code = tuple[str, str]  # (system, code)


class _Expander:
    """Expands ValueSets against the CodeSystems of one parsed bundle."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.value_sets: dict[str, dict[str, Any]] = {}
        self.systems: dict[str, dict[str, list[str]]] = {}  # url -> code -> children
        self.complete: set[str] = set()
        self.abstract: set[Code] = set()  # notSelectable/abstract: never valid in data
        for entry in bundle.get("entry", ()):
            res = entry.get("resource") or {}
            if res.get("resourceType") == "ValueSet":
                self.value_sets[res["url"]] = res
            elif res.get("resourceType") == "CodeSystem" and res.get("content") != "supplement":
                tree: dict[str, list[str]] = {}
                self._walk(res["url"], res.get("concept", ()), None, tree)
                self.systems[res["url"]] = tree
                if res.get("content") == "complete":
                    self.complete.add(res["url"])
        self._memo: dict[str, frozenset[Code] | None] = {}

    def _walk(self, system: str, concepts: Iterable[dict[str, Any]], parent: str | None,
              tree: dict[str, list[str]]) -> None:
        """Flatten a nested concept list into ``code -> children`` (parent links too)."""
        for concept in concepts:
            code = concept["code"]
            tree.setdefault(code, [])
            if parent is not None:
                tree[parent].append(code)
            for prop in concept.get("property", ()):
                if prop.get("code") in ("parent", "subsumedBy") and "valueCode" in prop:
                    tree.setdefault(prop["valueCode"], []).append(code)
                if prop.get("code") in ("notSelectable", "abstract") and prop.get("valueBoolean"):
                    self.abstract.add((system, code))
            self._walk(system, concept.get("concept", ()), code, tree)

    def _descendants(self, system: str, code: str) -> set[str]:
        """``code`` and every code below it in ``system``."""
        tree = self.systems[system]
        out: set[str] = set()
        stack = [code]
        while stack:
            current = stack.pop()
            if current not in out:
                out.add(current)
                stack.extend(tree.get(current, ()))
        return out

    def _include(self, inc: dict[str, Any]) -> set[Code] | None:
        """Codes selected by one ``compose.include``/``exclude`` entry, or None."""
        system = inc.get("system")
        selected: set[Code] | None = None
        if system is not None:
            if "concept" in inc:
                selected = {(system, c["code"]) for c in inc["concept"]}
            elif system not in self.systems:
                return None
            elif "filter" in inc:
                selected = self._filtered(system, inc["filter"])
                if selected is None:
                    return None
                selected -= self.abstract
            elif system in self.complete:
                selected = {(system, c) for c in self.systems[system]} - self.abstract
            else:
                return None
        for url in inc.get("valueSet", ()):
            nested = self.expand(url)
            if nested is None:
                return None
            selected = set(nested) if selected is None else selected & nested
        return selected

    def _filtered(self, system: str, filters: list[dict[str, Any]]) -> set[Code] | None:
        """Codes of ``system`` passing every filter; None for unsupported filters."""
        codes: set[str] | None = None
        for f in filters:
            if f.get("property") != "concept" or f.get("op") not in ("is-a", "descendent-of"):
                return None
            found = self._descendants(system, f["value"])
            if f["op"] == "descendent-of":
                found.discard(f["value"])
            codes = found if codes is None else codes & found
        return {(system, c) for c in codes or ()}

    def expand(self, url: str) -> frozenset[Code] | None:
        """The (system, code) pairs of value set ``url``, or None if not expandable."""
        if url in self._memo:
            return self._memo[url]
        self._memo[url] = None  # guards against include cycles
        result = self._expand(self.value_sets.get(url))
        self._memo[url] = result
        return result

    def _expand(self, vs: dict[str, Any] | None) -> frozenset[Code] | None:
        """Expand one ValueSet resource from its ``compose``."""
        if vs is None or "compose" not in vs:
            return None
        codes: set[Code] = set()
        for inc in vs["compose"].get("include", ()):
            part = self._include(inc)
            if part is None:
                return None
            codes |= part
        for exc in vs["compose"].get("exclude", ()):
            part = self._include(exc)
            if part is None:
                return None
            codes -= part
        return frozenset(codes)


def expand_packed(profiles_dir: Path, urls: Iterable[str]) -> bytes:
    """Expand ``urls`` from ``valuesets.json``; return ``{url: [[system, code]...]}`` packed.

    Value sets that cannot be expanded are left out. The result is a blob so that no
    object made while the 9 MB bundle is parsed outlives this call (see
    :mod:`fhir_server.definitions.loader`).
    """
    expander = _Expander(orjson.loads((profiles_dir / VALUESETS_FILE).read_bytes()))
    out: dict[str, list[Code]] = {}
    for url in urls:
        codes = expander.expand(url)
        if codes is not None:
            out[url] = sorted(codes)
    return orjson.dumps(out)


class Terminology:
    """Expanded value sets, keyed by canonical URL (without version)."""

    def __init__(self, expansions: dict[str, frozenset[Code]]) -> None:
        self._expansions = expansions
        self._codes = {url: frozenset(c for _, c in v) for url, v in expansions.items()}

    @classmethod
    def unpack(cls, packed: bytes) -> Terminology:
        """Build from a blob made by :func:`expand_packed`."""
        data: dict[str, list[list[str]]] = orjson.loads(packed)
        return cls({url: frozenset((s, c) for s, c in pairs) for url, pairs in data.items()})

    def expansion(self, url: str) -> frozenset[Code] | None:
        """The (system, code) pairs of ``url``, or None when it could not be expanded."""
        return self._expansions.get(url)

    def codes(self, url: str) -> frozenset[str] | None:
        """Just the codes of ``url`` (for ``code``-typed elements), or None."""
        return self._codes.get(url)
