"""The profiles the server knows, built once at start, and validation against them.

Sources: every folder below the shipped ``profiles/`` (``profiles/hospital/``...) and
the operator's ``PROFILES_DIR``. A resource is checked against each profile of its
``meta.profile`` that is known (an unknown one is a warning) and against the profiles
``REQUIRED_PROFILES`` names for its type. Invariants (FHIRPath constraints) a profile
adds are handed to ``constraints``, the FHIRPath evaluator's entry point
(:meth:`fhir_server.validation.invariants.Invariants.check_constraints`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from fhir_server.definitions import Definitions
from fhir_server.definitions.loader import release_memory
from fhir_server.errors import Issue
from fhir_server.terminology import Catalog
from fhir_server.validation.profiles.bindings import Bindings, load_terminology
from fhir_server.validation.profiles.loader import (
    CORE_PREFIX,
    ProfileError,
    canonical,
    core_structures,
    read_folders,
)
from fhir_server.validation.profiles.model import Node, Profile, compile_profile
from fhir_server.validation.profiles.snapshot import Element, Resolved, generate
from fhir_server.validation.profiles.walker import Walker

#: ``check_constraints(resource, constraints)``: the issues of the constraints (each an
#: ``ElementDefinition.constraint`` plus ``context``, the element path it is on)
ConstraintCheck = Callable[[dict[str, Any], Sequence[dict[str, Any]]], list[Issue]]


def no_constraints(resource: dict[str, Any], constraints: Sequence[dict[str, Any]]) -> list[Issue]:
    """No constraint check (VALIDATE_INVARIANTS=false); the server plugs in
    :meth:`fhir_server.validation.invariants.Invariants.check_constraints`."""
    return []


def parse_required(text: str) -> dict[str, tuple[str, ...]]:
    """``Patient=url,Encounter=url`` -> {type: (url, ...)}; a type may repeat."""
    out: dict[str, tuple[str, ...]] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        type_name, sep, url = part.partition("=")
        if not sep or not type_name.strip() or not url.strip():
            raise ValueError(f"REQUIRED_PROFILES takes Type=url pairs, not {part.strip()!r}")
        key = type_name.strip()
        out[key] = (*out.get(key, ()), canonical(url.strip()))
    return out


def _snapshots(structures: list[dict[str, Any]], core: Mapping[str, dict[str, Any]]
               ) -> dict[str, tuple[str, list[Element], list[str]]]:
    """url -> (type, snapshot, changed ids) of every constraining StructureDefinition."""
    by_url = {canonical(str(sd["url"])): sd for sd in structures
              if sd.get("derivation") == "constraint" and "url" in sd}
    for url, sd in core.items():
        if sd.get("derivation") == "constraint":  # SimpleQuantity, MoneyQuantity
            by_url.setdefault(url, sd)
    done: dict[str, Resolved] = {}
    busy: set[str] = set()

    def resolve(url: str) -> Resolved | None:
        if url in done:
            elements, changed = done[url]
            return copy.deepcopy(elements), changed
        if url in by_url:
            if url in busy:
                raise ProfileError(f"{url}: its base chain is a cycle")
            busy.add(url)
            done[url] = generate(by_url[url], resolve, types)
            busy.discard(url)
            return resolve(url)
        base = core.get(url)
        if base is None or "snapshot" not in base:
            return None
        return copy.deepcopy(base["snapshot"]["element"]), frozenset()

    def types(url: str) -> list[Element] | None:
        if url in by_url:
            resolved = resolve(url)
            return resolved[0] if resolved else None
        base = core.get(url)
        return base["snapshot"]["element"] if base and "snapshot" in base else None

    out = {}
    for url, sd in by_url.items():
        resolved = resolve(url)
        assert resolved is not None
        out[url] = (str(sd["type"]), resolved[0], sorted(resolved[1]))
    return out


def _binding_urls(node: Node) -> set[str]:
    urls = {node.binding[1]} if node.binding and node.changed else set()
    for sub in (*node.children, *node.slices):
        urls |= _binding_urls(sub)
    return urls


class ProfileSet:
    """The compiled profiles, the required ones per type, and the walker over them."""

    #: the CodeSystems and ValueSets of the specification and of the profile folders
    #: (set by :meth:`load`; the terminology operations serve it)
    catalog: Catalog | None = None

    def __init__(self, profiles: dict[str, Profile], required: Mapping[str, tuple[str, ...]],
                 walker: Walker, constraints: ConstraintCheck = no_constraints) -> None:
        self.profiles = profiles
        self.required = dict(required)
        self._walker = walker
        self._constraints = constraints

    @classmethod
    def load(cls, definitions: Definitions, base_dir: Path, folders: Sequence[Path] = (),
             required: Mapping[str, tuple[str, ...]] | None = None,
             constraints: ConstraintCheck = no_constraints) -> ProfileSet:
        """Read, resolve and compile the profiles of ``base_dir``'s sub-folders and
        ``folders``; raise :class:`ProfileError` for one that cannot be used, or for a
        required profile that is not known or not of its type."""
        shipped = sorted(p for p in base_dir.iterdir() if p.is_dir())
        found = read_folders([*shipped, *folders])
        core = core_structures(base_dir)
        packed = orjson.dumps(_snapshots(found.structures, core))
        del core
        release_memory()  # the base bundles: see fhir_server.definitions.loader
        core_types = frozenset(definitions.resource_types | definitions.abstract_types
                               | definitions.complex_types | definitions.primitive_types
                               | {"Element", "BackboneElement"})
        profiles = {url: compile_profile(url, type_name, elements, frozenset(changed),
                                         core_types)
                    for url, (type_name, elements, changed) in orjson.loads(packed).items()}
        for type_name, urls in (required or {}).items():
            for url in urls:
                if url not in profiles:
                    raise ProfileError(f"REQUIRED_PROFILES: {url} is not a known profile")
                if profiles[url].type != type_name:
                    raise ProfileError(f"REQUIRED_PROFILES: {url} constrains "
                                       f"{profiles[url].type}, not {type_name}")
        bound = set().union(*(_binding_urls(p.root) for p in profiles.values()))
        terminology, catalog = load_terminology(base_dir, found.terminology, sorted(bound))
        bindings = Bindings(terminology)
        type_codes = {t[:1].upper() + t[1:]: t for t in
                      definitions.primitive_types | definitions.complex_types}
        type_codes.update({t: t for t in definitions.resource_types})
        walker = Walker(profiles, type_codes, definitions.resource_types, bindings)
        release_memory()
        loaded = cls(profiles, required or {}, walker, constraints)
        loaded.catalog = catalog
        return loaded

    def issues(self, resource: dict[str, Any], named: Sequence[str] = ()) -> list[Issue]:
        """The issues of ``resource`` against its declared and its required profiles,
        and ``named`` (known profiles of its type, asked for by ``$validate``)."""
        resource_type = str(resource.get("resourceType"))
        meta = resource.get("meta")
        declared = meta.get("profile") if isinstance(meta, dict) else None
        urls = list(dict.fromkeys((*self.required.get(resource_type, ()), *named)))
        issues: list[Issue] = []
        for index, raw in enumerate(declared if isinstance(declared, list) else ()):
            url = canonical(raw) if isinstance(raw, str) else ""
            if url in urls:
                continue
            where = (f"{resource_type}.meta.profile[{index}]",)
            profile = self.profiles.get(url)
            if profile is None:
                if url != CORE_PREFIX + resource_type:  # the base type itself
                    issues.append(Issue("not-supported", f"profile {raw} is not known "
                                        "to this server: not checked", severity="warning",
                                        expression=where))
            elif profile.type != resource_type:
                issues.append(Issue("invalid", f"profile {url} is for {profile.type}, "
                                    f"not {resource_type}", expression=where))
            else:
                urls.append(url)
        for url in urls:
            profile = self.profiles[url]
            issues.extend(self._walker.check(profile, resource, resource_type))
            if profile.constraints:
                issues.extend(self._constraints(resource, profile.constraints))
        return issues
