"""The PATCH interaction: JSON Patch (RFC 6902) and FHIRPath Patch on one resource.

:func:`apply_patch` picks the flavour from the request's media type and returns a new,
patched resource; the input is never modified. A malformed patch document is a
``BadRequest``; a well-formed patch that cannot be applied to this resource (a path
that finds nothing, a failing ``test``, a type mismatch) is ``Unprocessable``. A patch
may never change ``resourceType`` or ``id``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonpatch
import jsonpointer

from fhir_server.definitions import Definitions
from fhir_server.errors import UnsupportedMediaType
from fhir_server.service.patch_fhirpath import bad_request, unprocessable
from fhir_server.service.patch_operations import Operation, Patcher, value_keys
from fhir_server.service.patch_size import (
    SizeBudget,
    check_operation_count,
    json_size,
    member,
)

JSON_PATCH = "application/json-patch+json"
FHIR_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
OPERATION_TYPES = ("add", "insert", "delete", "replace", "move")
# Parts each FHIRPath Patch operation type needs (besides `type` and `path`).
_REQUIRED = {"add": ("name", "value"), "insert": ("value", "index"), "delete": (),
             "replace": ("value",), "move": ("source", "destination")}
_PART_NAMES = frozenset({"type", "path", "name", "value", "index", "source", "destination"})
_ELEMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\[x\])?")
_INTEGER_KEYS = ("valueInteger", "valueUnsignedInt", "valuePositiveInt")
_JSON_PATCH_MEMBERS = {"add": "value", "remove": None, "replace": "value", "move": "from",
                       "copy": "from", "test": "value"}


def apply_patch(resource: dict[str, Any], media_type: str, body: Any, *,
                definitions: Definitions | None = None,
                max_bytes: int | None = None) -> dict[str, Any]:
    """Apply the PATCH ``body`` (parsed JSON) sent as ``media_type`` to ``resource``.

    ``application/json-patch+json`` takes an RFC 6902 array; ``application/fhir+json``
    (or ``application/json``) takes a FHIRPath Patch ``Parameters`` resource. Passing
    ``definitions`` lets FHIRPath Patch tell repeating elements (``add`` of the first
    ``identifier`` makes an array), build choice elements from parts and check types.
    With ``max_bytes``, an operation that could make the resource larger is refused
    (413) before it runs (:mod:`~fhir_server.service.patch_size`). Returns a new
    resource dict.
    """
    base = media_type.split(";", 1)[0].strip().lower()
    if base != JSON_PATCH and base not in FHIR_JSON_TYPES:
        raise UnsupportedMediaType(
            f"PATCH does not support the media type {base or '(none)'!r}: send a JSON Patch "
            f"as {JSON_PATCH} or a FHIRPath Patch Parameters resource as application/fhir+json")
    try:
        patched = _json_patch(resource, body, max_bytes) if base == JSON_PATCH \
            else _fhirpath_patch(resource, body, definitions, max_bytes)
    except RecursionError as exc:  # a hostile, deeply nested value or path
        raise bad_request("The patch is nested too deeply") from exc
    return _check_identity(resource, patched)


def _check_identity(original: dict[str, Any], patched: Any) -> dict[str, Any]:
    """``patched``, unless it is no longer an object or its identity changed."""
    if not isinstance(patched, dict):
        raise unprocessable("The patch must leave a resource (a JSON object)")
    for key in ("resourceType", "id"):
        if patched.get(key) != original.get(key):
            raise unprocessable(f"A patch may not change the resource's {key} "
                                f"({original.get(key)!r} to {patched.get(key)!r})",
                                f"{original.get('resourceType')}.{key}")
    return patched


# --- JSON Patch -----------------------------------------------------------------------

def _check_json_operation(number: int, operation: Any) -> None:
    """Syntax of one JSON Patch operation, checked before anything is applied."""
    where = f"JSON Patch operation #{number}"
    if not isinstance(operation, dict):
        raise bad_request(f"{where} must be an object")
    op = operation.get("op")
    if not isinstance(op, str) or op not in _JSON_PATCH_MEMBERS:
        raise bad_request(f"{where} has an unknown op {op!r}; expected one of "
                          f"{', '.join(_JSON_PATCH_MEMBERS)}")
    member = _JSON_PATCH_MEMBERS[op]
    pointers = ("path", "from") if member == "from" else ("path",)
    for name in pointers:
        pointer = operation.get(name)
        if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
            raise bad_request(f"{where} ({op}) needs a JSON Pointer in {name!r}")
    if member == "value" and "value" not in operation:
        raise bad_request(f"{where} ({op}) needs a 'value'")


def _expression(resource_type: str, pointer: str) -> str:
    """A JSON Pointer as a FHIRPath, as issue.expression wants (``Patient.name[0]``)."""
    out = resource_type
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        out += f"[{token}]" if token.isdigit() else f".{token}"
    return out


def _found(document: Any, pointer: str) -> Any:
    """The value at ``pointer``, or None when there is none."""
    try:
        return jsonpointer.JsonPointer(pointer).resolve(document, None)
    except jsonpointer.JsonPointerException:
        return None


def _account(budget: SizeBudget, document: Any, operation: dict[str, Any],
             where: str) -> None:
    """Count what ``operation`` will add and take away, before it runs (a pointer that
    finds nothing counts nothing: the operation then fails by itself)."""
    op = operation["op"]
    if op == "test":
        return
    if op == "remove":
        budget.remove(_found(document, operation["path"]))
        return
    try:
        parent, part = jsonpointer.JsonPointer(operation["path"]).to_last(document)
    except jsonpointer.JsonPointerException:
        return
    replaced = parent.get(part) if isinstance(parent, dict) and part is not None else None
    if op == "replace" or part is None:
        replaced = _found(document, operation["path"])
        key_size = 0
    else:
        key_size = member(str(part) if isinstance(parent, dict) else None)
    if op in ("add", "replace"):
        added = json_size(operation["value"])
    elif op == "copy":
        added = json_size(_found(document, operation["from"]))
        budget.copy(added, where)
    else:  # move: the value changes place, its new key is new
        added = 0
    budget.change(key_size + added, json_size(replaced) if replaced is not None else 0,
                  where)


def _json_patch(resource: dict[str, Any], body: Any, max_bytes: int | None) -> Any:
    """Apply an RFC 6902 document operation by operation, to name the one that fails."""
    if not isinstance(body, list):
        raise bad_request("A JSON Patch document must be a JSON array of operations")
    check_operation_count(len(body))
    for number, operation in enumerate(body, 1):
        _check_json_operation(number, operation)
    try:
        patches = [jsonpatch.JsonPatch([operation]) for operation in body]
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise bad_request(f"Invalid JSON Patch document: {exc}") from exc
    document: Any = copy.deepcopy(resource)
    budget = SizeBudget(document, max_bytes)
    for number, (operation, patch) in enumerate(zip(body, patches, strict=True), 1):
        where = f"JSON Patch operation #{number} ({operation['op']} {operation['path']!r})"
        expression = _expression(str(resource.get("resourceType")), operation["path"])
        _account(budget, document, operation, where)
        try:
            document = patch.apply(document, in_place=True)
        except jsonpatch.InvalidJsonPatch as exc:
            raise bad_request(f"{where} is invalid: {exc}", expression) from exc
        except jsonpatch.JsonPatchTestFailed as exc:
            raise unprocessable(f"{where} failed: {exc}", expression) from exc
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException,
                TypeError) as exc:
            raise unprocessable(f"{where} cannot be applied: {exc}", expression) from exc
    return document


# --- FHIRPath Patch: reading the Parameters -------------------------------------------

def _part_value(part: dict[str, Any], keys: tuple[str, ...], what: str) -> Any:
    found = [part[k] for k in keys if k in part]
    if len(found) != 1:
        raise bad_request(f"{what} must have one of {', '.join(keys)}")
    return found[0]


def _read_operation(number: int, parameter: Any) -> Operation:
    """Check the shape of one ``operation`` parameter (malformed → BadRequest)."""
    where = f"FHIRPath Patch operation #{number}"
    if not isinstance(parameter, dict) or parameter.get("name") != "operation":
        raise bad_request(f"{where}: every parameter must be named 'operation'")
    parts: dict[str, dict[str, Any]] = {}
    given = parameter.get("part") or []
    if not isinstance(given, list):
        raise bad_request(f"{where}: 'part' must be an array")
    for part in given:
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str) or name not in _PART_NAMES:
            raise bad_request(f"{where}: unknown part {name!r}")
        if name in parts:
            raise bad_request(f"{where}: part {name!r} is repeated")
        parts[name] = part
    if "type" not in parts or "path" not in parts:
        raise bad_request(f"{where}: the parts 'type' and 'path' are required")
    op_type = _part_value(parts["type"], ("valueCode", "valueString"), f"{where}: 'type'")
    if op_type not in OPERATION_TYPES:
        raise bad_request(f"{where}: unknown type {op_type!r}; expected one of "
                          f"{', '.join(OPERATION_TYPES)}")
    missing = [name for name in _REQUIRED[op_type] if name not in parts]
    if missing:
        raise bad_request(f"{where} ({op_type}) needs the part(s) {', '.join(missing)}")
    texts: dict[str, str] = {}
    for name in ("path", "name"):
        if name in parts:
            text = _part_value(parts[name], ("valueString", "valueCode"), f"{where}: {name!r}")
            if not isinstance(text, str) or not text.strip():
                raise bad_request(f"{where}: {name!r} must be a non-empty string")
            texts[name] = text.strip()
    if "name" in texts and not _ELEMENT_NAME.fullmatch(texts["name"]):
        raise bad_request(f"{where}: {texts['name']!r} is not an element name")
    numbers: dict[str, int] = {}
    for name in ("index", "source", "destination"):
        if name in parts:
            number_ = _part_value(parts[name], _INTEGER_KEYS, f"{where}: {name!r}")
            if not isinstance(number_, int) or isinstance(number_, bool) or number_ < 0:
                raise bad_request(f"{where}: {name!r} must be a non-negative integer")
            numbers[name] = number_
    if "value" in parts:
        _check_value_part(parts["value"], f"{where}: 'value'")
    return Operation(number, op_type, texts["path"], texts.get("name"), parts.get("value"),
                      numbers.get("index"), numbers.get("source"), numbers.get("destination"))


def _check_value_part(part: dict[str, Any], what: str) -> None:
    """A value is exactly one of ``value[x]``, ``resource`` or nested ``part``s."""
    count = len(value_keys(part)) + ("resource" in part) + ("part" in part)
    if count != 1:
        raise bad_request(f"{what} must have exactly one of value[x], resource or part")
    if "resource" in part and not (isinstance(part["resource"], dict)
                                   and isinstance(part["resource"].get("resourceType"), str)):
        raise bad_request(f"{what}: 'resource' must be a resource")
    nested = part.get("part", [])
    if not isinstance(nested, list) or ("part" in part and not nested):
        raise bad_request(f"{what}: 'part' must be a non-empty array")
    for sub in nested:
        if not isinstance(sub, dict) or not isinstance(sub.get("name"), str) \
                or not _ELEMENT_NAME.fullmatch(sub["name"]):
            raise bad_request(f"{what}: every part needs an element name")
        _check_value_part(sub, f"{what} part {sub['name']!r}")


def _fhirpath_patch(resource: dict[str, Any], body: Any, definitions: Definitions | None,
                    max_bytes: int | None) -> dict[str, Any]:
    """Apply a FHIRPath Patch ``Parameters`` resource to a copy of ``resource``."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request("A FHIRPath Patch must be a Parameters resource (for JSON Patch, "
                          f"send an array as {JSON_PATCH})")
    parameters = body.get("parameter") or []
    if not isinstance(parameters, list):
        raise bad_request("Parameters.parameter must be an array")
    check_operation_count(len(parameters))
    operations = [_read_operation(n, p) for n, p in enumerate(parameters, 1)]
    document = copy.deepcopy(resource)
    patcher = Patcher(document, definitions, SizeBudget(document, max_bytes))
    for operation in operations:
        patcher.apply(operation)
    return patcher.resource
