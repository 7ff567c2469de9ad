"""The element-order table of the XML form (http://hl7.org/fhir/R4/xml.html).

XML has no keys to look a property up by and no JSON types, so both directions of the
codec need, for every structure (a resource, a data type, a backbone element), its
children in StructureDefinition order, what each one holds (a primitive of which JSON
kind, a structure, a resource, XHTML), whether it repeats, and whether it is an XML
attribute (``id`` of an element, ``Extension.url``). The table is built once from the
:class:`~fhir_server.definitions.Definitions` the server loads at start (``use``), or
on first need from the shipped profiles (``layout``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"


class Kind(Enum):
    """What an element holds."""

    STRING = "string"  # a primitive written as a JSON string
    BOOLEAN = "boolean"
    INTEGER = "integer"  # integer, positiveInt, unsignedInt: JSON numbers without a point
    DECIMAL = "decimal"  # a JSON number whose text is kept exactly
    XHTML = "xhtml"  # Narrative.div: literal XHTML in XML, its text in JSON
    COMPLEX = "complex"  # a data type or backbone element: ``structure`` names its children
    RESOURCE = "resource"  # a resource container (contained, Bundle.entry.resource...)

    @property
    def primitive(self) -> bool:
        """Whether the element is a primitive (``value`` attribute, ``_name`` in JSON)."""
        return self in _PRIMITIVE_KINDS


_PRIMITIVE_KINDS = frozenset({Kind.STRING, Kind.BOOLEAN, Kind.INTEGER, Kind.DECIMAL})
_JSON_KINDS = {"boolean": Kind.BOOLEAN, "integer": Kind.INTEGER, "positiveInt": Kind.INTEGER,
               "unsignedInt": Kind.INTEGER, "decimal": Kind.DECIMAL}
_RESOURCE_TYPE_CODES = frozenset({"Resource", "DomainResource"})


@dataclass(frozen=True, slots=True)
class Child:
    """One child element as it appears under a name (a choice's ``valueQuantity``)."""

    name: str
    #: its place among its siblings (choices share their ``[x]`` element's place)
    order: int
    kind: Kind
    #: for COMPLEX, where its children are defined (``HumanName``, ``Patient.contact``)
    structure: str
    array: bool
    attribute: bool


class Layout:
    """Children by structure and name, in StructureDefinition order."""

    def __init__(self, definitions: Any) -> None:
        self.resource_types: frozenset[str] = frozenset(definitions.resource_types)
        primitives = frozenset(definitions.primitive_types)
        tables: dict[str, dict[str, Child]] = {}
        counts: dict[str, int] = {}
        # Definitions keep the snapshot order of every element (types first).
        for info in definitions.elements():
            parent, sep, _ = info.path.rpartition(".")
            if not sep:
                continue
            order = counts.get(parent, 0)
            counts[parent] = order + 1
            table = tables.setdefault(parent, {})
            names = info.json_names()
            for name, code in zip(names, info.types or ("",), strict=False):
                table[name] = self._child(info, name, order, code, primitives)
            if not info.types:  # a content reference: no types of its own
                table[info.name] = self._child(info, info.name, order, "", primitives)
        self._tables: dict[str, Mapping[str, Child]] = {
            k: MappingProxyType(v) for k, v in tables.items()}

    @staticmethod
    def _child(info: Any, name: str, order: int, code: str,
               primitives: frozenset[str]) -> Child:
        if info.content_reference is not None:
            kind, structure = Kind.COMPLEX, info.content_reference
        elif info.has_children:
            kind, structure = Kind.COMPLEX, info.path
        elif code == "xhtml":
            kind, structure = Kind.XHTML, code
        elif code in primitives:
            kind, structure = _JSON_KINDS.get(code, Kind.STRING), code
        elif code in _RESOURCE_TYPE_CODES:
            kind, structure = Kind.RESOURCE, code
        else:
            kind, structure = Kind.COMPLEX, code
        return Child(name, order, kind, structure, info.is_array, info.xml_attribute)

    def children(self, structure: str) -> Mapping[str, Child]:
        """The children of a resource type, data type or backbone path, by name."""
        return self._tables.get(structure, _EMPTY)


_EMPTY: Mapping[str, Child] = MappingProxyType({})
_lock = threading.Lock()
_current: Layout | None = None


def use(definitions: Any) -> Layout:
    """Build the table from already loaded definitions and keep it for :func:`layout`."""
    global _current
    built = Layout(definitions)
    with _lock:
        _current = built
    return built


def layout() -> Layout:
    """The table in use; built from the shipped profiles when nothing set one yet
    (errors answered before the app started, unit tests)."""
    global _current
    with _lock:
        if _current is None:
            from fhir_server.definitions import Definitions

            _current = Layout(Definitions.load())
        return _current
