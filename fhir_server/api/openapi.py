"""The OpenAPI 3.1 document of the FHIR API, for the docs pages.

``build_openapi`` describes the FHIR REST interactions per resource type by hand (FastAPI's
generated schema knows nothing of FHIR media types, headers or resources);
``openapi_provider`` builds and serialises it once, for ``docs.docs_router`` to serve.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

SearchParams = Mapping[str, Sequence[tuple[str, str, str]]]

FHIR_JSON = "application/fhir+json"
_TYPE_RE = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
_COMMON_SEARCH = ("_count", "_summary", "_elements", "_format")
_RICH_SCHEMAS = ("Bundle", "OperationOutcome", "CapabilityStatement")


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _params(*names: str) -> list[dict[str, str]]:
    return [_ref("parameters", n) for n in names]


def _body(schema: str, example: dict[str, Any] | None = None) -> dict[str, Any]:
    extra = {"example": example} if example else {}
    return {FHIR_JSON: {"schema": _ref("schemas", schema), **extra}}


def _ok(description: str, schema: str, *headers: str) -> dict[str, Any]:
    heads = {"headers": {h: _ref("headers", h) for h in headers}} if headers else {}
    return {"description": description, "content": _body(schema), **heads}


def _errors(*codes: str) -> dict[str, Any]:
    names = {"304": "NotModified", "400": "BadRequest", "404": "NotFound", "409": "Conflict",
             "410": "Gone", "412": "PreconditionFailed", "422": "Unprocessable"}
    out: dict[str, Any] = {code: _ref("responses", names[code]) for code in codes}
    out["default"] = _ref("responses", "Error")
    return out


def _op(op_id: str, tag: str, summary: str, params: list[dict[str, Any]],
        responses: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "tags": [tag], "summary": summary,
                          "parameters": params, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    return op


def _search_param(code: str, fhir_type: str, description: str) -> dict[str, Any]:
    # Repeating a search parameter means AND in FHIR, hence an exploded array.
    hints = {"token": "[system]|[code]", "date": "[prefix]YYYY-MM-DD (e.g. ge2020-01-01)",
             "reference": "[Type]/[id] or [id]", "number": "[prefix]number (e.g. gt5)",
             "quantity": "[prefix]value|[system]|[code]", "string": "text, prefix match"}
    hint = hints.get(fhir_type)
    text = f"{description} (FHIR `{fhir_type}` search parameter"
    text += f"; value {hint})" if hint else ")"
    return {"name": code, "in": "query", "required": False, "description": text,
            "style": "form", "explode": True, "x-fhir-search-type": fhir_type,
            "schema": {"type": "array", "items": {"type": "string"}}}


def _type_paths(t: str, search: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    seen = set(_COMMON_SEARCH)
    extra = []
    for code, fhir_type, description in search:
        if code not in seen:  # OpenAPI forbids duplicate (name, in) pairs
            seen.add(code)
            extra.append(_search_param(code, fhir_type, description))
    id_param = _params("id")
    read_ok = _ok(f"The {t} resource", t, "ETag", "Last-Modified")
    written = "ETag", "Last-Modified", "Location"
    return {
        f"/fhir/{t}": {
            "get": _op(f"search{t}", t, f"Search {t} resources (search-type)",
                       _params(*_COMMON_SEARCH) + extra,
                       {"200": _ok("A searchset Bundle", "Bundle"), **_errors("400")}),
            "post": _op(f"create{t}", t, f"Create a {t} (server assigns the id)",
                        _params("Prefer", "_format"),
                        {"201": _ok("Created", t, *written), **_errors("400", "412", "422")},
                        _body(t, {"resourceType": t})),
        },
        f"/fhir/{t}/{{id}}": {
            "parameters": id_param,
            "get": _op(f"read{t}", t, f"Read the current version of a {t}",
                       _params("_summary", "_elements", "_format", "If-None-Match",
                               "If-Modified-Since"),
                       {"200": read_ok, **_errors("304", "404", "410")}),
            "put": _op(f"update{t}", t, f"Update (or create with a client id) a {t}",
                       _params("If-Match", "Prefer", "_format"),
                       {"200": _ok("Updated", t, *written),
                        "201": _ok("Created", t, *written),
                        **_errors("400", "409", "412", "422")},
                       _body(t, {"resourceType": t, "id": "example"})),
            "delete": _op(f"delete{t}", t, f"Delete a {t}", _params("If-Match"),
                          {"200": _ok("Deleted", "OperationOutcome"),
                           "204": {"description": "Deleted"},
                           **_errors("404", "409", "412")}),
        },
        f"/fhir/{t}/{{id}}/_history": {
            "parameters": id_param,
            "get": _op(f"historyInstance{t}", t, f"History of one {t} (history-instance)",
                       _params("_count", "_since", "_at", "_format"),
                       {"200": _ok("A history Bundle", "Bundle"), **_errors("400", "404")}),
        },
        f"/fhir/{t}/{{id}}/_history/{{vid}}": {
            "parameters": _params("id", "vid"),
            "get": _op(f"vread{t}", t, f"Read one version of a {t} (vread)",
                       _params("_summary", "_elements", "_format"),
                       {"200": read_ok, **_errors("404", "410")}),
        },
        f"/fhir/{t}/_history": {
            "get": _op(f"historyType{t}", t, f"History of all {t} resources (history-type)",
                       _params("_count", "_since", "_at", "_format"),
                       {"200": _ok("A history Bundle", "Bundle"), **_errors("400")}),
        },
    }


def _system_paths() -> dict[str, Any]:
    def plain(op_id: str, summary: str, media: str, ok: str, *extra: str) -> dict[str, Any]:
        codes = {"200": ok, **{c: "Not ready" for c in extra}}
        schema = {"type": "string"} if media == "text/plain" else _ref("schemas", "HealthStatus")
        responses = {c: {"description": d, "content": {media: {"schema": schema}}}
                     for c, d in codes.items()}
        return {"get": _op(op_id, "Operations", summary, [], responses)}

    return {
        "/fhir/metadata": {"get": _op(
            "capabilities", "System", "The server's CapabilityStatement",
            [*_params("_format", "_summary"), _query("mode", "What to return", {
                "type": "string", "enum": ["full", "normative", "terminology"]})],
            {"200": _ok("CapabilityStatement", "CapabilityStatement"), **_errors()})},
        "/fhir/_history": {"get": _op(
            "historySystem", "System", "History of all resources (history-system)",
            _params("_count", "_since", "_at", "_format"),
            {"200": _ok("A history Bundle", "Bundle"), **_errors("400")})},
        "/api/v1/health": plain("health", "Liveness: the process is up", "application/json",
                                "Alive"),
        "/api/v1/ready": plain("ready", "Readiness: dependencies (database) are usable",
                               "application/json", "Ready", "503"),
        "/metrics": plain("metrics", "Prometheus metrics (text exposition format)",
                          "text/plain", "Metrics"),
    }


def _query(name: str, description: str, schema: dict[str, Any] | None = None,
           where: str = "query") -> dict[str, Any]:
    # Path parameters must be required in OpenAPI; all others are optional here.
    return {"name": name, "in": where, "required": where == "path",
            "description": description, "schema": schema or {"type": "string"}}


def _components(types: Sequence[str]) -> dict[str, Any]:
    def resource(name: str, **props: Any) -> dict[str, Any]:
        return {"type": "object", "required": ["resourceType"], "additionalProperties": True,
                "properties": {"resourceType": {"type": "string", "const": name},
                               "id": _ref("schemas", "Id"), "meta": _ref("schemas", "Meta"),
                               **props},
                "externalDocs": {"url": f"https://hl7.org/fhir/R4/{name.lower()}.html"}}

    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": _body("OperationOutcome")}

    issue = {"type": "object", "required": ["severity", "code"], "properties": {
        "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
        "code": {"type": "string"}, "diagnostics": {"type": "string"},
        "expression": {"type": "array", "items": {"type": "string"}}}}
    entry = {"type": "object", "properties": {
        "fullUrl": {"type": "string"}, "resource": _ref("schemas", "Resource"),
        "search": {"type": "object"}, "request": {"type": "object"},
        "response": {"type": "object"}}}
    schemas: dict[str, Any] = {
        "Id": {"type": "string", "pattern": r"^[A-Za-z0-9\-\.]{1,64}$", "examples": ["example"]},
        "Meta": {"type": "object", "properties": {
            "versionId": {"type": "string"},
            "lastUpdated": {"type": "string", "format": "date-time"}}},
        "Resource": {"type": "object", "required": ["resourceType"],
                     "additionalProperties": True,
                     "properties": {"resourceType": {"type": "string"},
                                    "id": _ref("schemas", "Id"),
                                    "meta": _ref("schemas", "Meta")}},
        "HealthStatus": {"type": "object", "additionalProperties": True,
                         "properties": {"status": {"type": "string"}}},
    }
    schemas.update({t: resource(t) for t in types})
    # These three are used by every type's responses, so they get real structure.
    schemas["OperationOutcome"] = resource(
        "OperationOutcome", issue={"type": "array", "minItems": 1, "items": issue})
    schemas["Bundle"] = resource(
        "Bundle", type={"type": "string"}, total={"type": "integer", "minimum": 0},
        link={"type": "array", "items": {"type": "object", "properties": {
            "relation": {"type": "string"}, "url": {"type": "string"}}}},
        entry={"type": "array", "items": entry})
    schemas["CapabilityStatement"] = resource(
        "CapabilityStatement", fhirVersion={"type": "string"}, rest={"type": "array"})
    return {
        "schemas": schemas,
        "parameters": {p["name"]: p for p in (
            _query("id", "Logical id of the resource", _ref("schemas", "Id"), "path"),
            _query("vid", "Version id (meta.versionId)", None, "path"),
            _query("_count", "Page size", {"type": "integer", "minimum": 0}),
            _query("_summary", "Return a summary only", {
                "type": "string", "enum": ["true", "false", "text", "data", "count"]}),
            _query("_elements", "Comma-separated element names to return"),
            _query("_format", "Override the Accept header",
                   {"type": "string", "examples": ["json", FHIR_JSON]}),
            _query("_since", "Only versions changed after this instant",
                   {"type": "string", "format": "date-time"}),
            _query("_at", "Only versions current at this point in time"),
            _query("If-Match", 'Version-aware update/delete: W/"<versionId>"', None, "header"),
            _query("If-None-Match", 'Conditional read: W/"<versionId>"', None, "header"),
            _query("If-Modified-Since", "Conditional read (HTTP date)", None, "header"),
            _query("Prefer", "return=minimal | return=representation | "
                             "return=OperationOutcome", None, "header"),
        )},
        "headers": {name: {"description": text, "schema": {"type": "string"}} for name, text in (
            ("ETag", 'W/"<versionId>"'), ("Location", "[base]/[type]/[id]/_history/[vid]"),
            ("Last-Modified", "meta.lastUpdated as an HTTP date"))},
        "responses": {
            "NotModified": {"description": "Not modified (conditional read matched)"},
            "BadRequest": error("Bad request (e.g. unknown or malformed parameter)"),
            "NotFound": error("Unknown resource type or id"),
            "Conflict": error("Version conflict"),
            "Gone": error("The resource was deleted"),
            "PreconditionFailed": error("If-Match or conditional precondition failed"),
            "Unprocessable": error("The resource failed validation"),
            "Error": error("Other error"),
        },
    }


def _checked_types(resource_types: Sequence[str]) -> list[str]:
    types = list(dict.fromkeys(resource_types))  # de-duplicate, keep the caller's order
    bad = [t for t in types if not _TYPE_RE.match(t)]
    if bad:  # names end up in paths and $refs, so reject anything odd
        raise ValueError(f"not FHIR resource type names: {bad!r}")
    return types


def build_openapi(resource_types: Sequence[str], *, version: str,
                  search_params: SearchParams | None = None) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document describing the FHIR REST API for ``resource_types``.

    Pure: the same arguments give an equal, freshly built dict (callers cache the
    serialised form, see ``openapi_provider``). ``search_params`` maps a type to
    ``(code, fhir param type, description)`` triples listed on its search operation.
    Raises ``ValueError`` for a name that is not a FHIR resource type name.
    """
    types = _checked_types(resource_types)
    params = search_params or {}
    paths: dict[str, Any] = {}
    for t in types:
        paths.update(_type_paths(t, params.get(t, ())))
    paths.update(_system_paths())
    tags = [{"name": t, "description": f"FHIR R4 {t} resource",
             "externalDocs": {"description": "FHIR specification",
                              "url": f"https://hl7.org/fhir/R4/{t.lower()}.html"}}
            for t in types]
    tags += [{"name": "System", "description": "Whole-system FHIR interactions"},
             {"name": "Operations", "description": "Operator endpoints (health, metrics)"}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "FHIR R4 Server", "version": version,
                 "description": "FHIR R4 (4.0.1) RESTful API. Bodies are "
                                f"`{FHIR_JSON}`; errors are OperationOutcome resources."},
        "tags": tags,
        "paths": paths,
        "components": _components([t for t in types if t not in _RICH_SCHEMAS]),
    }


def openapi_provider(resource_types: Sequence[str], *, version: str,
                     search_params: SearchParams | None = None) -> Callable[[], bytes]:
    """Return a ``get_openapi`` callable for ``docs_router`` that builds the JSON once."""
    # Snapshot (and check now, not on the first request): the build itself is lazy.
    types = tuple(_checked_types(resource_types))
    params = {k: tuple(v) for k, v in (search_params or {}).items()}

    @functools.cache
    def get_openapi() -> bytes:
        return orjson.dumps(build_openapi(types, version=version, search_params=params))

    return get_openapi

