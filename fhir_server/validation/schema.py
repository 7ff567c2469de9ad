"""Build the validation schema: the official R4 JSON schema, tightened from the definitions.

The published ``fhir.schema.json`` is loose in ways that matter to a server: its object
definitions lack ``"type": "object"``, it does not require mandatory primitives, allows
empty arrays, objects and some empty strings, accepts ``1.5`` as an integer, lacks
4.0.1 in its FHIR version list and types ``contained`` as a 146-way ``oneOf``. Each
property schema is therefore regenerated from the StructureDefinition facts (type,
cardinality, required binding), re-using the official primitive regexes and the official
names of backbone definitions. The result is a draft-07 document whose root dispatches
on ``resourceType`` with a binary tree of ``if``/``then``/``else``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhir_server.definitions import Definitions, ElementInfo
from fhir_server.definitions.model import BACKBONE_TYPES
from fhir_server.terminology import Terminology
from fhir_server.validation.dates import PATTERNS as DATE_PATTERNS

DRAFT = "http://json-schema.org/draft-07/schema#"
BINDING_KEYWORD = "fhirBinding"
RESOURCE_LIST = "ResourceList"
NULLABLE = "_or_null"  # suffix of the Element variant used inside ``_x`` arrays
_REF = "#/definitions/"
_INT32 = (-(2**31), 2**31 - 1)
_BASE64 = r"^(\s*([0-9a-zA-Z\+/=]){4}\s*)+$"
# ele-1: an element with nothing but an ``id`` carries no information.
ELE1 = {"type": "object", "required": ["id"], "maxProperties": 1}
_CODED = frozenset({"Coding", "CodeableConcept"})
_SMALL_CHOICE = 12  # choice groups up to this size are checked by listing the variants


#: string and markdown: no control characters but tab, CR and LF (datatypes.html#string)
STRING_CHARACTERS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"


#: BCP 13 (all MIME types): not expandable, so checked by form: an RFC 6838
#: type/subtype, then parameters, which are not checked (real content writes
#: ``variant=DICOM WADO-RS`` unquoted, as the official examples do)
MIME_TYPES = "http://hl7.org/fhir/ValueSet/mimetypes"
_MIME_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
MIME_TYPE = rf"^{_MIME_NAME}/{_MIME_NAME}(\s*;.*)?$"
#: where the binding admits short names too (xml, json, ttl: capabilitystatement.html;
#: TestScript's examples and engines use them for contentType and accept)
_FORMAT_ALIASES = ("CapabilityStatement.format", "TestScript.")


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF + name}


def _primitive(name: str, official: dict[str, Any]) -> dict[str, Any]:
    """The schema of one primitive type (value part only)."""
    if name in ("integer", "unsignedInt", "positiveInt"):
        low = {"integer": _INT32[0], "unsignedInt": 0, "positiveInt": 1}[name]
        return {"type": "integer", "minimum": low, "maximum": _INT32[1]}
    if name in ("decimal", "boolean"):
        return {"type": official["type"]}
    out: dict[str, Any] = {"type": "string", "minLength": 1}
    pattern = official.get("pattern")
    # The official string/markdown regex [ \r\n\t\S]+ means "any character" in XML
    # Schema, but \S excludes Unicode spaces (U+00A0) in other engines: drop it.
    if pattern and r"\S]+$" not in pattern:
        out["pattern"] = pattern
    elif pattern:
        out["pattern"] = STRING_CHARACTERS
    if name == "base64Binary":
        out["pattern"] = _BASE64
    elif name == "xhtml":
        out["pattern"] = r"^\s*<div[\s>/]"
    elif name in DATE_PATTERNS:
        out["pattern"] = DATE_PATTERNS[name]
    return out


def _any_required(names: Iterable[str]) -> dict[str, Any]:
    return {"anyOf": [{"required": [n]} for n in names]}


class SchemaBuilder:
    """Turns the official schema plus definitions into the validation schema."""

    def __init__(self, official: dict[str, Any], definitions: Definitions,
                 terminology: Terminology) -> None:
        self._src: dict[str, Any] = official["definitions"]
        self._defs = definitions
        self._terms = terminology
        self._out: dict[str, Any] = {}
        self.bindings: dict[str, str] = {}  # element path -> enforced coded value set
        # The property names of each "one of these must be present" group -> the name
        # of the mandatory element it stands for (``medication[x]``, ``status``).
        self.mandatory_labels: dict[tuple[str, ...], str] = {}

    def build(self) -> dict[str, Any]:
        """The complete draft-07 schema document (root = any concrete resource)."""
        for name in self._defs.primitive_types:
            schema = _primitive(name, self._src[name])
            self._out[name] = schema
        self._structure("Element", "Element")
        self._out["Element" + NULLABLE] = _nullable_object(self._out["Element"])
        for name in sorted(self._defs.complex_types | self._defs.resource_types):
            self._structure(name, name)
        types = sorted(self._defs.resource_types)
        self._out[RESOURCE_LIST] = {
            "type": "object",
            "required": ["resourceType"],
            "properties": {"resourceType": {"enum": types}},
            "allOf": [_dispatch(types)],
        }
        return {"$schema": DRAFT, "$ref": _REF + RESOURCE_LIST, "definitions": self._out}

    def _structure(self, def_name: str, path: str) -> None:
        """Define ``def_name`` from the children of element (or type) ``path``."""
        if def_name in self._out:
            return
        self._out[def_name] = {}  # reserve first: backbones can be recursive
        src_props: dict[str, Any] = self._src[def_name].get("properties", {})
        props: dict[str, Any] = {}
        required: list[str] = []
        all_of: list[dict[str, Any]] = []
        choices: dict[str, Any] = {}
        solo_groups = 0  # mandatory non-choice elements that may be ``x`` or ``_x``
        is_resource = "resourceType" in src_props
        if is_resource:
            props["resourceType"] = {"const": def_name}
            required.append("resourceType")
        for el in self._defs.children(path).values():
            names = [n for n in el.json_names() if n in src_props]
            present: list[str] = []
            for json_name in names:
                type_code = self._type_of(el, json_name)
                props[json_name] = self._property(el, type_code, src_props[json_name])
                present.append(json_name)
                if type_code in self._defs.primitive_types:
                    props["_" + json_name] = (
                        _array(_ref("Element" + NULLABLE)) if el.is_array else _ref("Element"))
                    present.append("_" + json_name)
            if el.is_mandatory and present:
                if len(present) == 1:
                    required.append(present[0])
                else:
                    all_of.append(_any_required(present))
                    self.mandatory_labels[tuple(present)] = el.name
                    # A mandatory choice can be satisfied by the clashing variants.
                    solo_groups += 0 if len(names) > 1 else 1
            if len(names) > 1:
                choices.update(self._choice_group(def_name, el, names, props))
        schema: dict[str, Any] = {"type": "object", "properties": props,
                                  "additionalProperties": False, "minProperties": 1}
        if required:
            schema["required"] = required
        if all_of:
            schema["allOf"] = all_of
        least = len(required) + solo_groups  # properties of a complete object
        if choices and least:
            # Two variants can only clash in an object with at least ``least + 2``
            # properties, or in one missing a mandatory element: skip the per-variant
            # look-ups for every other object (``{url, valueX}`` extensions above all).
            complete = [{"required": required}] if required else []
            schema["if"] = {"anyOf": [{"minProperties": least + 2},
                                      {"not": {"allOf": complete + all_of}}]}
            schema["then"] = {"dependencies": choices}
        elif choices:
            schema["dependencies"] = choices
        if not is_resource:
            schema["not"] = ELE1
        self._out[def_name] = schema

    def _choice_group(self, def_name: str, el: ElementInfo, names: list[str],
                      props: dict[str, Any]) -> dict[str, Any]:
        """``dependencies`` making the variants of one choice element exclusive.

        Small groups list the other variants (a few key look-ups when one is present).
        Large groups (``Extension.value[x]`` has 50 variants) would make that quadratic
        in schema size, so there every property name is matched against one shared
        regex of the group instead.
        """
        if len(names) <= _SMALL_CHOICE:
            return {name: {"not": _any_required(
                n for o in names if o != name for n in (o, "_" + o) if n in props)}
                for name in names}
        group = f"{def_name}__{el.name.removesuffix('[x]')}_choice"
        self._out[group] = {"pattern": "^_?(" + "|".join(names) + ")$"}
        return {name: {"propertyNames": {"anyOf": [{"not": _ref(group)},
                                                   {"enum": [name, "_" + name]}]}}
                for name in names}

    def _type_of(self, el: ElementInfo, json_name: str) -> str:
        """The FHIR type used under ``json_name`` (the choice suffix picks one)."""
        if el.is_choice:
            suffix = json_name[len(el.name) - 3:]
            for t in el.types:
                if t[0].upper() + t[1:] == suffix:
                    return t
        return el.types[0] if el.types else "BackboneElement"

    def _property(self, el: ElementInfo, type_code: str, src: dict[str, Any]) -> dict[str, Any]:
        """The schema of one JSON property, given its element and FHIR type."""
        item_src: dict[str, Any] = src.get("items", src)
        if type_code == "Resource":
            single: dict[str, Any] = _ref(RESOURCE_LIST)
            if el.name == "contained":
                # dom-2: a contained resource SHALL NOT contain resources itself.
                single = {"allOf": [single], "properties": {"contained": False}}
        elif type_code in BACKBONE_TYPES and el.is_backbone:
            target = str(item_src["$ref"]).removeprefix(_REF)
            self._structure(target, self._defs.structure_path(el.path))
            single = _ref(target)
        elif type_code in self._defs.primitive_types:
            single = self._primitive_property(el, type_code, item_src)
        else:
            single = _ref(type_code)
            if el.binding and type_code in _CODED and self._terms.expansion(el.binding):
                self.bindings[el.path] = el.binding
                single = {"allOf": [single], BINDING_KEYWORD: el.binding}
        if not el.is_array:
            return single
        # A null inside a primitive array (``"given": [null, "B"]``) is legal only when
        # ``_given`` holds an extension at that index. The schema rejects every null, and
        # the message translation drops the errors of the legal ones: this keeps the
        # common case free of the cost of checking pairs.
        return _array(single)

    def _primitive_property(self, el: ElementInfo, type_code: str,
                            src: dict[str, Any]) -> dict[str, Any]:
        """A primitive property: a reference to its type, or the codes of its binding."""
        if el.binding == MIME_TYPES and not el.path.startswith(_FORMAT_ALIASES):
            return {"type": "string", "pattern": MIME_TYPE}
        if el.binding and type_code == "code":
            codes = self._terms.codes(el.binding)
            if codes is None and "enum" in src:
                codes = frozenset(src["enum"])  # not expandable here: trust the schema
            if codes:
                return {"enum": sorted(codes)}
        official = str(src.get("$ref", "")).removeprefix(_REF)
        # The official schema types Resource.id as ``id``; the definitions say string.
        if official in self._defs.primitive_types and not el.is_choice:
            return _ref(official)
        return _ref(type_code)


def _array(items: dict[str, Any]) -> dict[str, Any]:
    """A non-empty JSON array of ``items`` (FHIR forbids empty arrays)."""
    return {"type": "array", "minItems": 1, "items": items}


def _nullable_object(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema that also admits null (``_x`` arrays of primitive arrays)."""
    return {**schema, "type": ["object", "null"]}


def _dispatch(types: list[str]) -> dict[str, Any]:
    """Select the definition named by ``resourceType`` in log2(n) enum checks.

    Each leaf re-checks its type, so an unknown ``resourceType`` (reported by the
    enclosing enum) selects no definition instead of the last one tried.
    """
    if len(types) == 1:
        return {"if": {"required": ["resourceType"],
                       "properties": {"resourceType": {"const": types[0]}}},
                "then": _ref(types[0])}
    half = len(types) // 2
    return {"if": {"properties": {"resourceType": {"enum": types[:half]}}},
            "then": _dispatch(types[:half]), "else": _dispatch(types[half:])}
