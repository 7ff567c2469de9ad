"""Profiles by canonical URL: the StructureDefinitions in ``profiles/`` that constrain a
resource type, as opposed to the specification's own base definitions.

``$validate``'s ``profile`` parameter names one of them (or a type's base definition),
and the CapabilityStatement lists them per type as ``supportedProfile``. What a profile
adds that the base schema cannot know is checked here: the cardinalities
(``min``/``max``) its elements declare, at any depth of the resource, for elements that
are not slices (slicing needs discriminators; those are not evaluated here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fhir_server.errors import Issue

#: The canonical URL prefix of the specification's own StructureDefinitions.
BASE = "http://hl7.org/fhir/StructureDefinition/"
#: The shipped specification files: base definitions and terminology, no profiles.
SPEC_FILES = frozenset({"profiles-resources.json", "profiles-types.json",
                        "valuesets.json", "fhir.schema.json"})


@dataclass(frozen=True)
class ElementRule:
    """One element's cardinality in a profile (``Patient.name.given``: 1..*)."""

    path: tuple[str, ...]  # below the type: ("name", "given")
    min: int
    max: str  # "*" or a number


@dataclass(frozen=True)
class Profile:
    """A StructureDefinition with ``derivation: constraint`` on a resource type."""

    url: str
    type: str
    name: str
    rules: tuple[ElementRule, ...]

    def issues(self, resource: Mapping[str, Any]) -> list[Issue]:
        """The places where ``resource`` breaks this profile's cardinalities."""
        found: list[Issue] = []
        for rule in self.rules:
            _check(rule, resource, (self.type,), 0, self.url, found)
        return found


def _rules(definition: Mapping[str, Any]) -> tuple[ElementRule, ...]:
    """The cardinality rules of a profile: its differential (what it changes), else its
    snapshot; slices and their children are left out (``:`` in the element id)."""
    elements = (definition.get("differential") or {}).get("element") or \
        (definition.get("snapshot") or {}).get("element") or []
    out: list[ElementRule] = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        path = str(element.get("path", "")).split(".")
        if len(path) < 2 or ":" in str(element.get("id", "")) or "sliceName" in element:
            continue
        minimum = element.get("min")
        maximum = element.get("max")
        if minimum is None and maximum is None:
            continue
        out.append(ElementRule(tuple(path[1:]), int(minimum or 0), str(maximum or "*")))
    return tuple(out)


def _values(node: Mapping[str, Any], name: str) -> list[tuple[str, Any]]:
    """The values of element ``name`` in ``node``, each with its FHIRPath step
    (``name[0]``; a choice ``value[x]`` matches ``valueQuantity``, ``valueString``...)."""
    if name.endswith("[x]"):
        stem = name[:-3]
        keys = [k for k in node if k.startswith(stem) and k[len(stem):][:1].isupper()]
    else:
        keys = [name] if name in node else []
    out: list[tuple[str, Any]] = []
    for key in keys:
        value = node[key]
        if isinstance(value, list):
            out.extend((f"{key}[{i}]", v) for i, v in enumerate(value))
        else:
            out.append((key, value))
    return out


def _check(rule: ElementRule, node: Mapping[str, Any], at: tuple[str, ...], depth: int,
           url: str, found: list[Issue]) -> None:
    name = rule.path[depth]
    values = _values(node, name)
    if depth + 1 < len(rule.path):
        for step, value in values:
            if isinstance(value, dict):
                _check(rule, value, (*at, step), depth + 1, url, found)
        return
    where = ".".join((*at, name.removesuffix("[x]")))
    if len(values) < rule.min:
        found.append(Issue("required", f"{where}: at least {rule.min} required by the "
                           f"profile {url}, found {len(values)}", expression=(where,)))
    if rule.max.isdigit() and len(values) > int(rule.max):
        limit = "not allowed" if rule.max == "0" else f"at most {rule.max} allowed"
        found.append(Issue("structure", f"{where}: {limit} by the profile {url}, found "
                           f"{len(values)}", expression=(where,)))


def _definitions(document: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(document, dict):
        return
    if document.get("resourceType") == "Bundle":
        for entry in document.get("entry") or ():
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict):
                yield resource
    else:
        yield document


def load_profiles(folder: Path, resource_types: Iterable[str]) -> dict[str, Profile]:
    """The resource profiles in ``folder`` (its JSON files at any depth, single
    StructureDefinitions or Bundles of them; the specification's files skipped), by URL."""
    types = frozenset(resource_types)
    out: dict[str, Profile] = {}
    for path in sorted(folder.rglob("*.json")):
        if path.name in SPEC_FILES:
            continue
        try:
            document = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue  # not ours to judge: other loaders report broken files
        for sd in _definitions(document):
            url = sd.get("url")
            if (sd.get("resourceType") != "StructureDefinition" or not isinstance(url, str)
                    or sd.get("derivation") != "constraint" or sd.get("type") not in types
                    or sd.get("kind") != "resource"):
                continue
            out[url] = Profile(url, str(sd["type"]), str(sd.get("name") or url), _rules(sd))
    return out
