"""The invariants of the R4 base definitions, read once from the StructureDefinitions.

Kept per structure (a type name, or a backbone element path such as ``Patient.contact``):
the constraints of its own differential, its base chain (``Age`` -> ``Quantity``,
``Patient`` -> ``DomainResource``), the target types of its Reference elements and the
constraint profiles (``SimpleQuantity``) its Quantity elements carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir_server.definitions.loader import release_memory

CORE_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
BUNDLES = ("profiles-types.json", "profiles-resources.json")
#: binding strengths whose misses are warnings (terminologies.html#strength)
WARNED_STRENGTHS = frozenset({"extensible", "preferred"})
CODED = frozenset({"code", "Coding", "CodeableConcept"})


@dataclass(frozen=True, slots=True)
class Constraint:
    """One ``ElementDefinition.constraint`` and the element path it is on."""

    key: str
    severity: str
    human: str
    expression: str
    #: the element path of the definition (``Patient.contact``, ``Period``)
    context: str
    #: the StructureDefinition (or profile) URL it comes from, for messages
    source: str = ""

    @classmethod
    def of(cls, raw: dict[str, Any], context: str, source: str = "") -> Constraint:
        """From an ``ElementDefinition.constraint`` JSON object."""
        return cls(str(raw.get("key", "")), str(raw.get("severity", "error")),
                   str(raw.get("human", "")), str(raw.get("expression", "")), context,
                   source or str(raw.get("source", "")))


@dataclass
class Catalog:
    """Constraints and reference targets of the base definitions."""

    #: structure name or element path -> its own constraints
    constraints: dict[str, list[Constraint]] = field(default_factory=dict)
    #: type name -> its base type name (``Age`` -> ``Quantity``)
    bases: dict[str, str] = field(default_factory=dict)
    #: Reference element path -> the resource types it may point to (absent: any)
    targets: dict[str, frozenset[str]] = field(default_factory=dict)
    #: element path -> the constraint profiles of its type (``SimpleQuantity``)
    type_profiles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: coded element path -> (strength, value set URL) of its extensible or preferred
    #: binding (required ones are the structure stage's)
    bindings: dict[str, tuple[str, str]] = field(default_factory=dict)

    def chain(self, type_name: str) -> list[Constraint]:
        """The constraints of ``type_name`` and of every type it derives from."""
        out: list[Constraint] = []
        seen: set[str] = set()
        name: str | None = type_name
        while name and name not in seen:
            seen.add(name)
            out += self.constraints.get(name, [])
            name = self.bases.get(name)
        return out

    @classmethod
    def load(cls, folder: Path) -> Catalog:
        """Read the two base bundles of ``folder`` (the shipped ``profiles/``)."""
        packed = _extract(folder)
        release_memory()  # the parsed bundles are large: see the definitions loader
        raw = orjson.loads(packed)
        return cls(
            constraints={path: [Constraint(*c) for c in items]
                         for path, items in raw["constraints"].items()},
            bases=raw["bases"],
            targets={p: frozenset(t) for p, t in raw["targets"].items()},
            type_profiles={p: tuple(t) for p, t in raw["profiles"].items()},
            bindings={p: (b[0], b[1]) for p, b in raw["bindings"].items()})


def _extract(folder: Path) -> bytes:
    out: dict[str, dict[str, Any]] = {
        "constraints": {}, "bases": {}, "targets": {}, "profiles": {}, "bindings": {}}
    for name in BUNDLES:
        bundle = orjson.loads((folder / name).read_bytes())
        for entry in bundle.get("entry", ()):
            sd = entry.get("resource") or {}
            if sd.get("resourceType") == "StructureDefinition" and \
                    sd.get("kind") in ("resource", "complex-type"):
                _add(out, sd)
        del bundle
    return orjson.dumps(out)


def _add(out: dict[str, dict[str, Any]], sd: dict[str, Any]) -> None:
    # A profile of a data type (SimpleQuantity) is keyed by its id, not its type.
    name = str(sd["id"] if sd.get("derivation") == "constraint" else sd["type"])
    base = str(sd.get("baseDefinition", ""))
    if base.startswith(CORE_PREFIX):
        out["bases"][name] = base[len(CORE_PREFIX):]
    url = str(sd.get("url", ""))
    for element in sd.get("differential", {}).get("element", ()):
        path = str(element["path"])
        key = name if path == sd["type"] else path
        for raw in element.get("constraint", ()):
            constraint = Constraint.of(raw, key, url)
            out["constraints"].setdefault(key, []).append(
                [constraint.key, constraint.severity, constraint.human,
                 constraint.expression, constraint.context, constraint.source])
    if sd.get("derivation") == "constraint":
        return
    for element in sd.get("snapshot", {}).get("element", ()):
        path = str(element["path"])
        binding = element.get("binding") or {}
        if binding.get("strength") in WARNED_STRENGTHS and binding.get("valueSet") and \
                {t.get("code") for t in element.get("type", ())} & CODED:
            out["bindings"][path] = [binding["strength"],
                                     str(binding["valueSet"]).split("|")[0]]
        for type_ref in element.get("type", ()):
            code = type_ref.get("code")
            if code == "Reference" and type_ref.get("targetProfile"):
                names = [str(t)[len(CORE_PREFIX):] for t in type_ref["targetProfile"]
                         if str(t).startswith(CORE_PREFIX)]
                out["targets"][path] = sorted(set(out["targets"].get(path, [])) | set(names))
            for profile in type_ref.get("profile", ()):
                if str(profile).startswith(CORE_PREFIX):
                    out["profiles"].setdefault(path, []).append(
                        str(profile)[len(CORE_PREFIX):])
