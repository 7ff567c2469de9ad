"""Typed, read-only facts about the R4 resources and data types, loaded once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from fhir_server.definitions.loader import Extracted, extract, release_memory, unpack
from fhir_server.definitions.model import ElementInfo
from fhir_server.paths import data_dir

# Top-level elements every subset keeps, whatever the definitions say.
ALWAYS_KEPT = ("id", "meta")


class Definitions:
    """Element facts of every R4 resource and complex data type.

    Build with :meth:`load`; all look-ups afterwards are in-memory dictionary reads.
    Paths are element paths as in the base definitions (``Patient.contact.name``,
    ``Patient.deceased[x]``); JSON property names are what appears in a resource
    (``deceasedBoolean``, ``_birthDate``).
    """

    def __init__(self, extracted: Extracted) -> None:
        self.resource_types: frozenset[str] = frozenset(extracted.resource_types)
        self.abstract_types: frozenset[str] = frozenset(extracted.abstract_types)
        self.complex_types: frozenset[str] = frozenset(extracted.complex_types)
        self.primitive_types: frozenset[str] = frozenset(extracted.primitive_types)
        self._elements: dict[str, ElementInfo] = extracted.elements
        children: dict[str, dict[str, ElementInfo]] = {}
        for info in self._elements.values():
            parent, sep, _ = info.path.rpartition(".")
            if sep:
                children.setdefault(parent, {})[info.name] = info
        self._children: dict[str, Mapping[str, ElementInfo]] = {
            k: MappingProxyType(v) for k, v in children.items()}
        self._properties: dict[str, Mapping[str, ElementInfo]] = {
            k: MappingProxyType(self._json_properties(v)) for k, v in children.items()}
        self._summary: dict[str, tuple[str, ...]] = {}
        self._mandatory: dict[str, tuple[str, ...]] = {}
        for name in self.resource_types:
            top = children.get(name, {})
            self._summary[name] = tuple(n for n, e in top.items() if e.is_summary)
            self._mandatory[name] = tuple(n for n, e in top.items() if e.is_mandatory)

    @classmethod
    def load(cls, profiles_dir: Path | None = None) -> Definitions:
        """Read the StructureDefinitions of ``profiles_dir`` (default: the shipped folder)."""
        packed = extract(profiles_dir or data_dir("profiles"))
        # Free the parsed bundles before building anything long-lived (see loader).
        release_memory()
        return cls(unpack(packed))

    @staticmethod
    def _json_properties(children: Mapping[str, ElementInfo]) -> dict[str, ElementInfo]:
        """Map every JSON property name (choices expanded, ``_x`` siblings) to its element."""
        out: dict[str, ElementInfo] = {}
        for info in children.values():
            for json_name in info.json_names():
                out[json_name] = info
                out["_" + json_name] = info
        return out

    def is_resource_type(self, name: str) -> bool:
        """Whether ``name`` is a concrete (instantiable) resource type."""
        return name in self.resource_types

    def elements(self) -> Iterable[ElementInfo]:
        """Every element, each structure's in snapshot order (the XML element order)."""
        return self._elements.values()

    def element(self, path: str) -> ElementInfo | None:
        """The element at ``path`` (``Patient.contact.name``), or None."""
        return self._elements.get(path)

    def structure_path(self, path: str) -> str:
        """Where the children of ``path`` are defined: follows a content reference."""
        info = self._elements.get(path)
        if info is not None and info.content_reference is not None:
            return info.content_reference
        return path

    def children(self, path: str) -> Mapping[str, ElementInfo]:
        """Child elements of a type or backbone element, keyed by element name.

        ``path`` may be a type name (``Patient``, ``HumanName``) or a backbone element
        path; content references (``Parameters.parameter.part``) are followed.
        """
        return self._children.get(self.structure_path(path), MappingProxyType({}))

    def properties(self, path: str) -> Mapping[str, ElementInfo]:
        """Like :meth:`children` but keyed by every JSON property name that may occur.

        ``deceased[x]`` appears as ``deceasedBoolean`` and ``deceasedDateTime``, and each
        name also as its ``_name`` primitive-extension sibling.
        """
        return self._properties.get(self.structure_path(path), MappingProxyType({}))

    def summary_elements(self, type_name: str) -> tuple[str, ...]:
        """Names of the top-level elements of a resource type marked ``isSummary``."""
        return self._summary.get(type_name, ())

    def mandatory_elements(self, type_name: str) -> tuple[str, ...]:
        """Names of the top-level elements of a resource type with ``min >= 1``."""
        return self._mandatory.get(type_name, ())

    def required_bindings(self) -> dict[str, str]:
        """Every element path with a required binding, mapped to the value set URL."""
        return {p: e.binding for p, e in self._elements.items() if e.binding is not None}
