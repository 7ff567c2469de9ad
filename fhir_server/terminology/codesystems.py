"""The CodeSystems and ValueSets the server knows: the specification's
(``valuesets.json``) and those found beside the profiles (``profiles/*/``, PROFILES_DIR).

The bundle is 9 MB; as with the StructureDefinitions (see
:mod:`fhir_server.definitions.loader`), the facts are packed into one blob while it is
parsed, everything parsed is dropped, and only then are the long-lived objects built
from the blob, so no object of the parse pins memory for the life of the process.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir_server.definitions.loader import release_memory

VALUESETS_FILE = "valuesets.json"
#: the specification's other terminology bundles: the HL7 v3 and v2 code systems and
#: value sets (v3-ActCode, v3-MaritalStatus, v2-0203...), read when shipped
MORE_TERMINOLOGY = ("v3-codesystems.json", "v2-tables.json")

#: (language, use system, use code, value) of one designation
Designation = tuple[str | None, str | None, str | None, str]
#: (property code, value[x] key, value) of one concept property
Property = tuple[str, str, Any]

#: boolean properties that mean the code is not to be used in data
_ABSTRACT = frozenset({"notSelectable", "abstract"})
#: properties whose value is a parent of the concept (``child``: a child)
_PARENT = frozenset({"parent", "subsumedBy"})


@dataclass(frozen=True, slots=True)
class Concept:
    """One concept of a CodeSystem (its place in the hierarchy is the CodeSystem's)."""

    code: str
    display: str | None = None
    definition: str | None = None
    designations: tuple[Designation, ...] = ()
    properties: tuple[Property, ...] = ()

    @property
    def abstract(self) -> bool:
        """notSelectable/abstract: a grouper, never valid in data."""
        return any(c in _ABSTRACT and v is True for c, _, v in self.properties)

    @property
    def inactive(self) -> bool:
        """The ``inactive`` property, or a retired/deprecated ``status``."""
        return any((c == "inactive" and v is True) or
                   (c == "status" and v in ("retired", "deprecated", "inactive"))
                   for c, _, v in self.properties)


@dataclass(slots=True)
class CodeSystem:
    """A CodeSystem's header and concepts in definition order (depth first)."""

    url: str
    id: str | None = None
    version: str | None = None
    name: str | None = None
    title: str | None = None
    content: str = "complete"
    hierarchy_meaning: str | None = None
    concepts: dict[str, Concept] = field(default_factory=dict)
    #: code -> the codes directly below / above it (nesting and parent/child properties)
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every code of the system is here (``content: complete``)."""
        return self.content == "complete"

    @property
    def held(self) -> bool:
        """Whether its concepts are here at all (SNOMED CT's CodeSystem resource in the
        specification is a header only: ``content: not-present``)."""
        return self.content != "not-present" and bool(self.concepts)

    @property
    def hierarchical(self) -> bool:
        """Whether any concept has a parent (subsumption means something here)."""
        return bool(self.children)


@dataclass(frozen=True, slots=True)
class ValueSetDef:
    """A ValueSet as the expander needs it: header, ``compose``, a shipped expansion."""

    url: str
    id: str | None
    version: str | None
    name: str | None
    title: str | None
    compose: dict[str, Any] | None
    expansion: dict[str, Any] | None = None


class Catalog:
    """CodeSystems and ValueSets by canonical URL (without ``|version``) and by id."""

    def __init__(self, code_systems: dict[str, CodeSystem],
                 value_sets: dict[str, ValueSetDef]) -> None:
        self.code_systems = code_systems
        self.value_sets = value_sets
        self.value_sets_by_id = {v.id: v for v in value_sets.values() if v.id}
        self.code_systems_by_id = {c.id: c for c in code_systems.values() if c.id}

    def code_system(self, url: str) -> CodeSystem | None:
        """The CodeSystem of canonical ``url`` whose concepts are here (a ``|version``
        suffix is ignored); None for one the server knows only the header of."""
        found = self.code_systems.get(url.split("|", 1)[0])
        return found if found is not None and found.held else None

    def value_set(self, url: str) -> ValueSetDef | None:
        """The ValueSet of canonical ``url`` (a ``|version`` suffix is ignored)."""
        return self.value_sets.get(url.split("|", 1)[0])

    def with_resources(self, extra: Iterable[dict[str, Any]]) -> Catalog:
        """This catalog plus ``extra`` ValueSets and CodeSystems (theirs win a URL)."""
        added = unpack(pack(extra))
        return Catalog({**self.code_systems, **added.code_systems},
                       {**self.value_sets, **added.value_sets})


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _concept_rows(concepts: Any, parent: str | None, out: list[list[Any]]) -> None:
    """Flatten nested concepts, depth first, into packed rows."""
    for concept in concepts if isinstance(concepts, list) else ():
        code = _str(concept.get("code")) if isinstance(concept, dict) else None
        if code is None:
            continue
        parents = [parent] if parent is not None else []
        props: list[list[Any]] = []
        for prop in concept.get("property") or ():
            key = next((k for k in prop if k.startswith("value")), None)
            if not isinstance(prop.get("code"), str) or key is None:
                continue
            props.append([prop["code"], key, prop[key]])
            if prop["code"] in _PARENT and isinstance(prop[key], str):
                parents.append(prop[key])
        designations = [[_str(d.get("language")), _str((d.get("use") or {}).get("system")),
                         _str((d.get("use") or {}).get("code")), d["value"]]
                        for d in concept.get("designation") or ()
                        if isinstance(d, dict) and isinstance(d.get("value"), str)]
        out.append([code, _str(concept.get("display")), _str(concept.get("definition")),
                    list(dict.fromkeys(parents)), designations, props])
        _concept_rows(concept.get("concept"), code, out)


def _pack_resource(resource: Any, out: dict[str, list[Any]]) -> None:
    if not isinstance(resource, dict) or not isinstance(resource.get("url"), str):
        return
    kind = resource.get("resourceType")
    if kind == "CodeSystem" and resource.get("content") != "supplement":
        rows: list[list[Any]] = []
        _concept_rows(resource.get("concept"), None, rows)
        out["cs"].append([resource["url"], _str(resource.get("id")),
                          _str(resource.get("version")), _str(resource.get("name")),
                          _str(resource.get("title")), resource.get("content") or "complete",
                          _str(resource.get("hierarchyMeaning")), rows])
    elif kind == "ValueSet":
        compose = resource.get("compose")
        expansion = resource.get("expansion")
        out["vs"].append([resource["url"], _str(resource.get("id")),
                          _str(resource.get("version")), _str(resource.get("name")),
                          _str(resource.get("title")),
                          compose if isinstance(compose, dict) else None,
                          expansion if isinstance(expansion, dict) else None])


def pack(resources: Iterable[Any]) -> bytes:
    """The facts of ``resources`` (ValueSets, CodeSystems, Bundles of them) as a blob."""
    out: dict[str, list[Any]] = {"cs": [], "vs": []}
    for resource in resources:
        if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
            for entry in resource.get("entry") or ():
                _pack_resource(entry.get("resource") if isinstance(entry, dict) else None,
                               out)
        else:
            _pack_resource(resource, out)
    return orjson.dumps(out)


def unpack(packed: bytes) -> Catalog:
    """Build the long-lived catalog from a blob made by :func:`pack`."""
    data = orjson.loads(packed)
    systems: dict[str, CodeSystem] = {}
    for url, cs_id, version, name, title, content, meaning, rows in data["cs"]:
        system = CodeSystem(url, cs_id, version, name, title, content, meaning)
        children: dict[str, list[str]] = {}
        for code, display, definition, parents, designations, props in rows:
            system.concepts[code] = Concept(
                code, display, definition,
                tuple(tuple(d) for d in designations),
                tuple(tuple(p) for p in props))
            for parent in parents:
                children.setdefault(parent, []).append(code)
            for prop_code, _, value in props:
                if prop_code == "child" and isinstance(value, str):
                    children.setdefault(code, []).append(value)
        system.children = {k: tuple(dict.fromkeys(v)) for k, v in children.items()}
        parents_of: dict[str, list[str]] = {}
        for parent, below in system.children.items():
            for child in below:
                parents_of.setdefault(child, []).append(parent)
        system.parents = {k: tuple(v) for k, v in parents_of.items()}
        systems[url] = system
    value_sets = {row[0]: ValueSetDef(*row) for row in data["vs"]}
    return Catalog(systems, value_sets)


@functools.lru_cache(maxsize=4)
@functools.lru_cache(maxsize=4)  # the validator, invariants, profiles share one
def load_catalog(profiles_dir: Path) -> Catalog:
    """The specification's CodeSystems and ValueSets from ``profiles_dir`` (read once
    per folder: the validator, the profiles and the operations share it)."""
    bundles = [orjson.loads((profiles_dir / name).read_bytes())
               for name in (VALUESETS_FILE, *MORE_TERMINOLOGY)
               if name == VALUESETS_FILE or (profiles_dir / name).is_file()]
    packed = pack(bundles)
    del bundles
    release_memory()
    return unpack(packed)
