"""The one value-set expander: for required bindings (validation), ``:in``/``:not-in``
(search) and ``ValueSet/$expand`` (operations).

Expanded from the catalog's CodeSystems: whole complete code systems, enumerated
concepts (of any system), filters on the systems held (``is-a``, ``descendent-of``,
``is-not-a``, ``generalizes``, ``in``, ``not-in``, ``=``, ``regex``, ``exists``) and
included value sets. Anything else (a whole external system such as SNOMED CT, LOINC
or UCUM, a filter on one) raises :class:`CannotExpand`, saying why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fhir_server.terminology.codesystems import Catalog, CodeSystem, Concept, load_catalog
from fhir_server.terminology.hierarchy import ancestors, descendants

Code = tuple[str, str]  # (system, code)

#: systems the server knows of but does not hold, by name (for the messages)
EXTERNAL = {"http://snomed.info/sct": "SNOMED CT", "http://loinc.org": "LOINC",
            "http://unitsofmeasure.org": "UCUM",
            "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
            "urn:ietf:bcp:47": "BCP-47 language tags", "urn:iso:std:iso:3166": "ISO 3166"}
#: grammars rather than lists: their value sets have no end
_GRAMMARS = frozenset({"http://unitsofmeasure.org", "urn:ietf:bcp:47"})


class CannotExpand(Exception):
    """A value set the server cannot expand; ``code`` is the OperationOutcome issue
    code (``not-supported``, ``too-costly``, ``not-found``)."""

    def __init__(self, message: str, code: str = "not-supported") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Entry:
    """One code of an expansion. ``listed``: named in a ``compose.include.concept``
    (an abstract code is valid in data only then)."""

    system: str
    code: str
    display: str | None = None
    version: str | None = None
    concept: Concept | None = None
    listed: bool = False

    @property
    def abstract(self) -> bool:
        return self.concept is not None and self.concept.abstract

    @property
    def inactive(self) -> bool:
        return self.concept is not None and self.concept.inactive


def _not_held(system: str) -> CannotExpand:
    name = EXTERNAL.get(system)
    if system in _GRAMMARS:
        return CannotExpand(f"{system} ({name}) is a grammar, not a list: a value set "
                            "drawing on all of it, or filtering it, has no finite "
                            "expansion", "too-costly")
    what = f"{system} ({name})" if name else system
    return CannotExpand(f"this server holds no content of the code system {what}: a "
                        "value set drawing on all of it or on a filter of it cannot be "
                        "expanded (only enumerated codes can)")


class Expander:
    """Expands ValueSets against one catalog; each URL's expansion is computed once."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._memo: dict[str, tuple[Entry, ...] | CannotExpand] = {}
        self._busy: set[str] = set()

    def expand(self, url: str) -> tuple[Entry, ...]:
        """The codes of value set ``url`` in order; CannotExpand when it cannot be."""
        key = url.split("|", 1)[0]
        found = self._memo.get(key)
        if found is None:
            vs = self.catalog.value_set(key)
            if vs is None:
                raise CannotExpand(f"the value set {url} is not known to this server",
                                   "not-found")
            if key in self._busy:
                raise CannotExpand(f"the value set {url} includes itself")
            self._busy.add(key)
            try:
                found = self.expand_compose(vs.compose, vs.expansion, url)
            except CannotExpand as exc:
                found = exc
            finally:
                self._busy.discard(key)
            self._memo[key] = found
        if isinstance(found, CannotExpand):
            raise CannotExpand(found.message, found.code)  # a fresh one: no traceback chain
        return found

    def members(self, url: str) -> frozenset[Code] | None:
        """The (system, code) pairs valid in data (abstract codes only when listed),
        or None when ``url`` cannot be expanded."""
        try:
            entries = self.expand(url)
        except CannotExpand:
            return None
        return frozenset((e.system, e.code) for e in entries if e.listed or not e.abstract)

    def expand_compose(self, compose: Any, shipped: Any = None,
                       url: str = "the value set") -> tuple[Entry, ...]:
        """Expand a ``compose`` (else a shipped ``expansion``'s contains)."""
        if not isinstance(compose, dict):
            if isinstance(shipped, dict) and shipped.get("contains"):
                return tuple(_contains(shipped["contains"]))
            raise CannotExpand(f"{url} has no compose to expand")
        selected: dict[Code, Entry] = {}
        for inc in compose.get("include") or ():
            for entry in self._include(inc):
                selected.setdefault((entry.system, entry.code), entry)
        for exc in compose.get("exclude") or ():
            for entry in self._include(exc):
                selected.pop((entry.system, entry.code), None)
        return tuple(selected.values())

    def _include(self, inc: dict[str, Any]) -> list[Entry]:
        """The codes one ``compose.include`` (or ``exclude``) selects, in order."""
        system = inc.get("system")
        selected: list[Entry] | None = None
        if isinstance(system, str):
            held = self.catalog.code_system(system)
            version = inc.get("version") if isinstance(inc.get("version"), str) else None
            if "concept" in inc:
                selected = [_listed(system, held, c, version) for c in inc["concept"]
                            if isinstance(c, dict) and isinstance(c.get("code"), str)]
            elif held is None:
                raise _not_held(system)
            elif "filter" in inc:
                codes = _filtered(held, inc["filter"])
                selected = [_entry(held, held.concepts[c]) for c in codes]
            elif held.complete:
                selected = [_entry(held, c) for c in held.concepts.values()]
            else:
                raise CannotExpand(f"the code system {system} is only a {held.content} "
                                   "here, not all of it: it cannot be expanded whole")
        for url in inc.get("valueSet") or ():
            nested = self.expand(url)
            if selected is None:
                selected = list(nested)
            else:
                keep = {(e.system, e.code) for e in nested}
                selected = [e for e in selected if (e.system, e.code) in keep]
        return selected or []


def _entry(system: CodeSystem, concept: Concept) -> Entry:
    return Entry(system.url, concept.code, concept.display, system.version, concept)


def _listed(system: str, held: CodeSystem | None, raw: dict[str, Any],
            version: str | None) -> Entry:
    concept = held.concepts.get(raw["code"]) if held is not None else None
    display = raw.get("display") if isinstance(raw.get("display"), str) else None
    return Entry(system, raw["code"], display or (concept.display if concept else None),
                 version or (held.version if held else None), concept, listed=True)


def _contains(items: Iterable[Any]) -> Iterable[Entry]:
    """A shipped expansion's codes, nested ones flattened."""
    for item in items:
        if isinstance(item, dict):
            if isinstance(item.get("system"), str) and isinstance(item.get("code"), str):
                yield Entry(item["system"], item["code"], item.get("display"),
                            item.get("version"), listed=True)
            yield from _contains(item.get("contains") or ())


def _value_of(concept: Concept, prop: str) -> list[str]:
    """The values (as strings) of property ``prop`` of a concept."""
    out = []
    for code, _, value in concept.properties:
        if code == prop:
            out.append(str(value).lower() if isinstance(value, bool) else str(value))
    return out


def _filtered(system: CodeSystem, filters: Any) -> list[str]:
    """Codes of ``system`` passing every filter, in definition order; abstract codes
    are excluded by the caller's ``members``."""
    keep: set[str] | None = None
    for f in filters if isinstance(filters, list) else ():
        prop, op, value = f.get("property"), f.get("op"), f.get("value")
        if not isinstance(value, str):
            raise CannotExpand(f"a filter on {system.url} has no value")
        found = _one_filter(system, str(prop), str(op), value)
        keep = found if keep is None else keep & found
    return [c for c in system.concepts if keep is None or c in keep]


def _one_filter(system: CodeSystem, prop: str, op: str, value: str) -> set[str]:
    codes = system.concepts
    if prop in ("concept", "code"):
        if op == "is-a":
            return set(descendants(system, value))
        if op == "descendent-of":
            return set(descendants(system, value)) - {value}
        if op == "is-not-a":
            return set(codes) - set(descendants(system, value))
        if op == "generalizes":
            return set(ancestors(system, value))
        if op in ("in", "not-in"):
            listed = {v.strip() for v in value.split(",")}
            return listed & set(codes) if op == "in" else set(codes) - listed
        if op == "=":
            return {value} & set(codes)
        if op == "regex":
            pattern = _regex(value)
            return {c for c in codes if pattern.fullmatch(c)}
    elif prop in ("parent", "child") and op == "=":
        edges = system.children if prop == "parent" else system.parents
        return set(edges.get(value, ()))
    elif op in ("=", "in", "not-in", "regex", "exists"):
        values = {c: _value_of(concept, prop) for c, concept in codes.items()}
        if op == "=":
            return {c for c, vs in values.items() if value in vs}
        if op == "exists":
            return {c for c, vs in values.items() if bool(vs) == (value == "true")}
        if op == "regex":
            pattern = _regex(value)
            return {c for c, vs in values.items() if any(pattern.fullmatch(v) for v in vs)}
        listed = {v.strip() for v in value.split(",")}
        hit = {c for c, vs in values.items() if listed & set(vs)}
        return hit if op == "in" else set(codes) - hit
    raise CannotExpand(f"the filter {prop} {op} {value!r} on {system.url} is not "
                       "supported by this server")


def _regex(value: str) -> re.Pattern[str]:
    try:
        return re.compile(value)
    except re.error as exc:
        raise CannotExpand(f"the filter regex {value!r} is not a valid pattern: {exc}",
                           "invalid") from None


def expand_packed(profiles_dir: Path, urls: Iterable[str]) -> bytes:
    """Expand ``urls`` from ``valuesets.json``; return ``{url: [[system, code]...]}`` packed
    (value sets that cannot be expanded are left out)."""
    expander = Expander(load_catalog(profiles_dir))
    out: dict[str, list[Code]] = {}
    for url in urls:
        codes = expander.members(url)
        if codes is not None:
            out[url] = sorted(codes)
    return orjson.dumps(out)


class Terminology:
    """Expanded value sets (the members valid in data), keyed by canonical URL."""

    def __init__(self, expansions: dict[str, frozenset[Code]]) -> None:
        self._expansions = expansions
        self._codes = {url: frozenset(c for _, c in v) for url, v in expansions.items()}

    @classmethod
    def unpack(cls, packed: bytes) -> Terminology:
        """Build from a blob made by :func:`expand_packed`."""
        data: dict[str, list[list[str]]] = orjson.loads(packed)
        return cls({url: frozenset((s, c) for s, c in pairs) for url, pairs in data.items()})

    @classmethod
    def of(cls, expander: Expander, urls: Iterable[str]) -> Terminology:
        """The members of ``urls`` that can be expanded."""
        found = {url: expander.members(url) for url in urls}
        return cls({url: codes for url, codes in found.items() if codes is not None})

    def expansion(self, url: str) -> frozenset[Code] | None:
        """The (system, code) pairs of ``url``, or None when it could not be expanded."""
        return self._expansions.get(url)

    def codes(self, url: str) -> frozenset[str] | None:
        """Just the codes of ``url`` (for ``code``-typed elements), or None."""
        return self._codes.get(url)
