"""The reusable parts of every OpenAPI document: schemas, header and query parameters,
response headers and error responses (unused ones are pruned per document)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"
SPEC = "https://hl7.org/fhir/R4/"

#: Status -> component name of the error responses (each an OperationOutcome).
ERRORS = {"400": "BadRequest", "404": "NotFound", "409": "Conflict", "410": "Gone",
          "412": "PreconditionFailed", "413": "PayloadTooLarge",
          "415": "UnsupportedMediaType", "422": "Unprocessable",
          "503": "ServiceUnavailable"}


def ref(kind: str, name: str) -> dict[str, str]:
    """A ``$ref`` to ``#/components/{kind}/{name}``."""
    return {"$ref": f"#/components/{kind}/{name}"}


def fhir_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A FHIR JSON content map (``application/fhir+json``) of ``schema``."""
    return {FHIR_JSON: {"schema": schema}}


def resource_schema(name: str, **properties: Any) -> dict[str, Any]:
    """A resource of type ``name``: ``resourceType``, ``id``, ``meta`` and anything else
    (the server validates bodies against the R4 definitions, not this schema)."""
    return {"type": "object", "required": ["resourceType"], "additionalProperties": True,
            "properties": {"resourceType": {"type": "string", "const": name},
                           "id": ref("schemas", "Id"), "meta": ref("schemas", "Meta"),
                           **properties},
            "externalDocs": {"url": f"{SPEC}{name.lower()}.html"}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": fhir_content(
        ref("schemas", "OperationOutcome"))}


def _query(name: str, description: str, schema: dict[str, Any], *,
           where: str = "query", **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path",
            "description": description, "schema": schema, **extra}


def _header(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return _query(name, description, {"type": "string", **schema}, where="header")


def _schemas() -> dict[str, Any]:
    issue = {"type": "object", "required": ["severity", "code"], "properties": {
        "severity": {"enum": ["fatal", "error", "warning", "information"]},
        "code": {"type": "string"}, "diagnostics": {"type": "string"},
        "expression": {"type": "array", "items": {"type": "string"}}}}
    entry = {"type": "object", "properties": {
        "fullUrl": {"type": "string"}, "resource": ref("schemas", "Resource"),
        "search": {"type": "object"}, "request": {"type": "object"},
        "response": {"type": "object"}}}
    return {
        "Id": {"type": "string", "pattern": r"^[A-Za-z0-9\-.]{1,64}$",
               "examples": ["example"]},
        "Meta": {"type": "object", "properties": {
            "versionId": {"type": "string"},
            "lastUpdated": {"type": "string", "format": "date-time"}}},
        "Resource": {"type": "object", "required": ["resourceType"],
                     "additionalProperties": True,
                     "properties": {"resourceType": {"type": "string"},
                                    "id": ref("schemas", "Id"),
                                    "meta": ref("schemas", "Meta")}},
        "OperationOutcome": resource_schema(
            "OperationOutcome", issue={"type": "array", "minItems": 1, "items": issue}),
        "Bundle": resource_schema(
            "Bundle", type={"type": "string"}, total={"type": "integer", "minimum": 0},
            link={"type": "array", "items": {"type": "object", "properties": {
                "relation": {"type": "string"}, "url": {"type": "string"}}}},
            entry={"type": "array", "items": entry}),
        "Parameters": resource_schema("Parameters", parameter={"type": "array", "items": {
            "type": "object", "required": ["name"], "additionalProperties": True,
            "properties": {"name": {"type": "string"}}}}),
        "CapabilityStatement": resource_schema(
            "CapabilityStatement", fhirVersion={"type": "string"}, rest={"type": "array"}),
        "JsonPatch": {"type": "array", "description": "RFC 6902 JSON Patch", "items": {
            "type": "object", "required": ["op", "path"], "properties": {
                "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
                "path": {"type": "string"}, "from": {"type": "string"}, "value": {}}},
            "examples": [[{"op": "replace", "path": "/active", "value": True}]]},
    }


def _parameters(default_count: int, max_count: int) -> dict[str, Any]:
    string = {"type": "string"}
    params = [
        _query("id", "Logical id of the resource", ref("schemas", "Id"), where="path"),
        _query("vid", "Version id (`meta.versionId`)", string, where="path"),
        _query("job_id", "The job's id (from `Content-Location` of the operation)",
               string, where="path"),
        _query("file", "An output file of an export, as its manifest names it", string,
               where="path"),
        _query("_outputFormat", "`application/fhir+ndjson` (or `application/ndjson`, "
               "`ndjson`)", string),
        _query("_typeFilter", "`[type]?[search query]`: only the matches of that type "
               "(one per type)", {"type": "array", "items": string}, style="form",
               explode=True),
        _query("_format", "Override `Accept`: `json`, `xml` or a FHIR JSON or XML media "
               "type (Turtle is 406)",
               {"type": "string", "examples": ["json", FHIR_JSON]}),
        _query("_pretty", "`true` indents the JSON (or XML)", {"enum": ["true", "false"]}),
        _query("_summary", "Return a summary only (`count`: only the total; searches)",
               {"enum": ["true", "false", "text", "data", "count"]}),
        _query("_elements", "Comma-separated top-level elements to return", string),
        _query("_count", f"Page size (default {default_count}, at most {max_count}; "
               "`0` counts only, like `_summary=count`)", {"type": "integer", "minimum": 0}),
        _query("_cursor", "Paging cursor: take it from a `next` or `previous` link", string),
        _query("_sort", "Comma-separated parameter codes, `-` before one for descending "
               "(e.g. `-_lastUpdated`)", string),
        _query("_include", "`Type:parameter[:TargetType]` or `*`: add the referenced "
               "resources (`_include:iterate` follows them on)",
               {"type": "array", "items": string}, style="form", explode=True),
        _query("_revinclude", "`Type:parameter[:TargetType]` or `*`: add the resources "
               "referring to the matches (`_revinclude:iterate` as well)",
               {"type": "array", "items": string}, style="form", explode=True),
        _query("_total", "Whether to count the matches (default `none`)",
               {"enum": ["none", "estimate", "accurate"]}),
        _query("_since", "Only versions changed after this instant",
               {"type": "string", "format": "date-time"}),
        _query("start", "Care dates from (a FHIR date)", string),
        _query("end", "Care dates up to (a FHIR date)", string),
        _query("_at", "Only versions current at this point in time (a FHIR date)", string),
        _header("If-Match", 'Version-aware write: `W/"<versionId>"` (412 when stale), '
                "or `*` (412 unless the resource exists)"),
        _header("If-None-Match", 'Conditional read: `W/"<versionId>"` or `*` (304)'),
        _header("If-Modified-Since", "Conditional read: an HTTP date (304)"),
        _header("If-None-Exist", "Conditional create: search criteria "
                "(`identifier=http://x|1`); one match is answered 200, several 412"),
        _header("Prefer", "What a write answers: `return=representation` (the default), "
                "`return=minimal` (no body) or `return=OperationOutcome`",
                enum=["return=representation", "return=minimal", "return=OperationOutcome"]),
    ]
    out = {p["name"]: p for p in params}
    out["export_type"] = _query("_type", "Comma-separated resource types to export "
                                "(default: every type of the level)", string)
    out["validate_mode"] = _query("mode", "Validate as this interaction would: `create`, "
                                  "`update` or `delete`", {"enum": ["create", "update",
                                                                     "delete"]})
    out["validate_profile"] = _query("profile", "Canonical URL of a StructureDefinition "
                                     "to validate against", string)
    integer = {"type": "integer", "minimum": 0}
    for name, description, schema in (
            ("url", "Canonical URL of a value set the server knows", string),
            ("valueSetVersion", "The value set's version", string),
            ("filter", "Keep codes whose code or display contains this (any case)", string),
            ("count", "Codes to return", integer), ("offset", "Codes to skip", integer),
            ("includeDesignations", "Add the concepts' designations", {"type": "boolean"}),
            ("code", "A code", string), ("system", "The code system's canonical URL", string),
            ("display", "The display to check", string),
            ("version", "The code system's version", string),
            ("coding", "A coding as `system|code`", string),
            ("codeA", "Code A", string), ("codeB", "Code B", string)):
        out[f"tx_{name}"] = _query(name, description, schema)
    out["capability_mode"] = _query("mode", "`full` (the default), `normative` (the "
                                    "same: all of it is normative in R4) or `terse`",
                                    {"enum": ["full", "normative", "terse"]})
    out["Prefer-async"] = _header("Prefer", "`respond-async`: required (a 400 without)",
                                  enum=["respond-async"])
    out["Prefer-handling"] = _header(
        "Prefer", "`handling=strict`: unknown or unsupported parameters are a 400 "
        "(default `handling=lenient`: ignored, left out of the `self` link)",
        enum=["handling=lenient", "handling=strict"])
    return out


def components(default_count: int = 20, max_count: int = 1000) -> dict[str, Any]:
    """Every shared component (a document adds its own and prunes the unused)."""
    headers = {name: {"description": text, "schema": {"type": "string"}}
               for name, text in (
        ("ETag", 'The version: `W/"<versionId>"`'),
        ("Last-Modified", "`meta.lastUpdated` as an HTTP date"),
        ("Location", "`[base]/[type]/[id]/_history/[vid]`"),
        ("Content-Location", "The status URL of a background job: `[base]/_jobs/[id]`"))}
    responses = {name: _error(text) for name, text in (
        ("BadRequest", "Malformed request (bad JSON, parameter or header)"),
        ("NotFound", "Unknown resource type, id or route"),
        ("Conflict", "A concurrent write of the same resource"),
        ("Gone", "The resource (or this version) is deleted"),
        ("PreconditionFailed", "`If-Match` is stale, or conditional criteria match more "
                               "than one resource"),
        ("PayloadTooLarge", "The body exceeds `MAX_BODY_BYTES`"),
        ("UnsupportedMediaType", "The body's Content-Type is not accepted"),
        ("Unprocessable", "The resource is not valid R4 (issues name the elements)"),
        ("ServiceUnavailable", "The database or background jobs are unavailable"),
        ("Error", "Any other error (405, 406, 414, 503, ...)"))}
    responses["NotModified"] = {
        "description": "Not modified (`If-None-Match` or `If-Modified-Since` matched)",
        "headers": {"ETag": ref("headers", "ETag"),
                    "Last-Modified": ref("headers", "Last-Modified")}}
    return {"schemas": _schemas(), "parameters": _parameters(default_count, max_count),
            "headers": headers, "responses": responses}


def refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def prune(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` without the components nothing refers to (transitively)."""
    comps: dict[str, dict[str, Any]] = document["components"]
    used: set[tuple[str, str]] = set()
    todo = list(refs(document["paths"]))
    while todo:
        _, _, kind, name = todo.pop().split("/", 3)
        if (kind, name) not in used:
            used.add((kind, name))
            todo.extend(refs(comps[kind][name]))
    document["components"] = {
        kind: {n: v for n, v in items.items() if (kind, n) in used}
        for kind, items in comps.items() if any(k == kind for k, _ in used)}
    return document
