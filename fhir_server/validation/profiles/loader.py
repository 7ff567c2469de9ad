"""Reading conformance resources (StructureDefinitions, ValueSets, CodeSystems) at start.

A folder may hold single resources, Bundles of them, or unpacked npm packages
(``package/*.json``, as the FHIR package registry and ``npm pack`` deliver them) and
``.tgz`` packages as downloaded: everything below it is read, other resource types and
non-FHIR JSON (``package.json``, ``.index.json``) are skipped.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir_server.definitions.loader import RESOURCES_FILE, TYPES_FILE

_KEPT = frozenset({"StructureDefinition", "ValueSet", "CodeSystem"})
#: the base definitions' canonical URLs: ``http://hl7.org/fhir/StructureDefinition/Patient``
CORE_PREFIX = "http://hl7.org/fhir/StructureDefinition/"


class ProfileError(ValueError):
    """A profile cannot be read or resolved (a start-up error: the operator's to fix)."""


@dataclass
class Conformance:
    """The conformance resources found, by kind."""

    structures: list[dict[str, Any]] = field(default_factory=list)
    terminology: list[dict[str, Any]] = field(default_factory=list)  # ValueSet, CodeSystem

    def add(self, resource: Any) -> None:
        """Keep ``resource`` (or a Bundle's entries) when it is a conformance resource."""
        if not isinstance(resource, dict):
            return
        kind = resource.get("resourceType")
        if kind == "Bundle":
            for entry in resource.get("entry") or ():
                self.add(entry.get("resource") if isinstance(entry, dict) else None)
        elif kind == "StructureDefinition":
            self.structures.append(resource)
        elif kind in _KEPT:
            self.terminology.append(resource)


def _parse(name: str, raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProfileError(f"{name} is not JSON: {exc}") from None


def _tgz_members(path: Path) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".json"):
                handle = archive.extractfile(member)
                if handle is not None:
                    yield f"{path}!{member.name}", handle.read()


def read_folders(folders: Iterable[Path], skip: Iterable[Path] = ()) -> Conformance:
    """Every conformance resource in ``folders`` (recursively), files in name order.

    ``skip`` names files not to read (the shipped base bundles, read by the
    definitions loader already).
    """
    skipped = {p.resolve() for p in skip}
    found = Conformance()
    for folder in folders:
        if not folder.is_dir():
            raise ProfileError(f"profile folder {folder} does not exist")
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.resolve() in skipped:
                continue
            if path.name.endswith((".tgz", ".tar.gz")):
                for name, raw in _tgz_members(path):
                    found.add(_parse(name, raw))
            elif path.suffix == ".json" and path.name not in ("package.json", ".index.json"):
                found.add(_parse(str(path), path.read_bytes()))
    return found


def core_structures(profiles_dir: Path) -> dict[str, dict[str, Any]]:
    """The base StructureDefinitions (resources and data types) by canonical URL.

    The caller drops the result once snapshots are made: they are big (see
    :mod:`fhir_server.definitions.loader` on why nothing of them should outlive that).
    """
    out: dict[str, dict[str, Any]] = {}
    for name in (TYPES_FILE, RESOURCES_FILE):
        bundle = orjson.loads((profiles_dir / name).read_bytes())
        for entry in bundle.get("entry", ()):
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "StructureDefinition" and "url" in resource:
                out[resource["url"]] = resource
    return out


def canonical(url: str) -> str:
    """A canonical URL without its ``|version``."""
    return url.split("|", 1)[0]
