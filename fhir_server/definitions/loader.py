"""Extract compact element facts from the R4 StructureDefinition bundles.

The bundles are large (``profiles-resources.json`` is 35 MB). Parsing them creates
millions of small Python objects; if any object made during that phase survived, it
would pin the allocator arenas around it and keep most of that memory resident. So the
facts are first packed into one ``bytes`` blob, everything else is dropped, and only
then are the long-lived objects built from the blob (see :func:`unpack`).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir_server.definitions.model import ElementInfo

RESOURCES_FILE = "profiles-resources.json"
TYPES_FILE = "profiles-types.json"

# FHIRPath system types appear on ``id``/``url`` elements; their FHIR type sits in this
# extension on the type entry.
_FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
_SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."


@dataclass
class Extracted:
    """Everything :class:`~fhir_server.definitions.Definitions` keeps."""

    resource_types: set[str] = field(default_factory=set)
    abstract_types: set[str] = field(default_factory=set)
    complex_types: set[str] = field(default_factory=set)
    primitive_types: set[str] = field(default_factory=set)
    elements: dict[str, ElementInfo] = field(default_factory=dict)


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS where glibc allows it."""
    gc.collect()
    # Without glibc there is nothing to trim: freed memory is reused by later allocations.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _type_code(entry: dict[str, Any]) -> str:
    """The FHIR type of one ``ElementDefinition.type`` entry."""
    code: str = entry["code"]
    if code.startswith(_SYSTEM_PREFIX):
        for ext in entry.get("extension", ()):
            if ext.get("url") == _FHIR_TYPE_EXT:
                return str(ext["valueUrl"])
        return "string"
    return code


def _element_row(raw: dict[str, Any], parents: set[str]) -> list[Any]:
    """The packed facts of one snapshot element (see :func:`unpack` for the order)."""
    binding = raw.get("binding") or {}
    value_set = binding.get("valueSet") if binding.get("strength") == "required" else None
    reference = raw.get("contentReference")
    max_raw = raw.get("max", "*")
    path: str = raw["path"]
    return [
        path,
        int(raw.get("min", 0)),
        None if max_raw == "*" else int(max_raw),
        [_type_code(t) for t in raw.get("type", ())],
        bool(raw.get("isSummary", False)),
        bool(raw.get("isModifier", False)),
        value_set.split("|", 1)[0] if value_set else None,
        reference[1:] if reference else None,
        path in parents,
        "xmlAttr" in raw.get("representation", ()),
    ]


def _add_structure(out: dict[str, list[Any]], sd: dict[str, Any]) -> None:
    """Pack one StructureDefinition (resource or complex type) into ``out``."""
    kind = sd.get("kind")
    name: str = sd["type"]
    if kind == "primitive-type":
        out["primitive"].append(name)
        return
    if kind not in ("resource", "complex-type") or sd.get("derivation") == "constraint":
        return  # logical models and profiles (SimpleQuantity...) add no new elements
    if sd.get("abstract"):
        out["abstract"].append(name)
    elif kind == "resource":
        out["resource"].append(name)
    else:
        out["complex"].append(name)
    raw_elements = sd["snapshot"]["element"]
    parents = {str(e["path"]).rsplit(".", 1)[0] for e in raw_elements if "." in e["path"]}
    out["elements"].extend(_element_row(raw, parents) for raw in raw_elements)


def extract(profiles_dir: Path) -> bytes:
    """Read both StructureDefinition bundles of ``profiles_dir`` into one packed blob."""
    out: dict[str, list[Any]] = {
        "resource": [], "abstract": [], "complex": [], "primitive": [], "elements": []}
    for file_name in (TYPES_FILE, RESOURCES_FILE):
        bundle = orjson.loads((profiles_dir / file_name).read_bytes())
        for entry in bundle.get("entry", ()):
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "StructureDefinition":
                _add_structure(out, resource)
        del bundle, entry, resource
    return orjson.dumps(out)


def unpack(packed: bytes) -> Extracted:
    """Build the long-lived facts from a blob made by :func:`extract`."""
    data = orjson.loads(packed)
    out = Extracted(set(data["resource"]), set(data["abstract"]), set(data["complex"]),
                    set(data["primitive"]))
    for (path, lo, hi, types, summary, modifier, binding, ref, has_children,
         xml_attribute) in data["elements"]:
        out.elements[path] = ElementInfo(path, lo, hi, tuple(types), summary, modifier,
                                         binding, ref, has_children, xml_attribute)
    return out
