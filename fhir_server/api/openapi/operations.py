"""One route of the table as an OpenAPI operation, at one concrete path."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fhir_server.api.openapi.components import (
    ERRORS,
    FHIR_JSON,
    FORM,
    JSON_PATCH,
    SPEC,
    fhir_content,
    ref,
)
from fhir_server.api.openapi.shapes import SHAPES, Shape
from fhir_server.api.router import Operation, Route

_PATH_PARAM = re.compile(r"\{(\w+)\}")
_WRITTEN_TEXT = ("The resource (`Prefer: return=representation`, the default), an "
                 "OperationOutcome (`return=OperationOutcome`) or nothing "
                 "(`return=minimal`).")


@dataclass(frozen=True)
class Place:
    """Where a route is documented: its concrete path and what its parameters are."""

    path: str
    operation_id: str
    tag: str
    #: schema name of the resources it reads or writes
    resource: str = "Resource"
    #: component names of the search parameters its query takes
    search: tuple[str, ...] = ()
    #: codes of the form fields of ``POST _search``
    form: tuple[str, ...] = ()
    #: extra query parameters (component names), e.g. ``_type``
    extra: tuple[str, ...] = ()
    note: str = ""


def shape_of(route: Route) -> Shape:
    """The route's shape; KeyError names a route the generator does not know yet."""
    key = (route.interaction, route.operation.name if route.operation else None)
    return SHAPES[key]


def _body(kind: str, place: Place) -> dict[str, Any]:
    schema = ref("schemas", place.resource)
    if kind == "resource":
        example: dict[str, Any] = {"resourceType": place.resource}
        if "{id}" in place.path:
            example["id"] = "example"
        content = {FHIR_JSON: {"schema": schema, "example": example}}
        return {"required": True, "description": "The resource (`application/json` is "
                "accepted too)", "content": content}
    if kind == "parameters":
        return {"required": True, "description": "The operation's input parameters",
                "content": fhir_content(ref("schemas", "Parameters"))}
    if kind == "patch":
        return {"required": True, "description": "JSON Patch, or a FHIRPath Patch "
                f"[Parameters]({SPEC}fhirpatch.html) resource", "content": {
                    JSON_PATCH: {"schema": ref("schemas", "JsonPatch")},
                    **fhir_content(ref("schemas", "Parameters"))}}
    if kind == "bundle":
        example = {"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": "metadata"}}]}
        return {"required": True, "content": {FHIR_JSON: {
            "schema": ref("schemas", "Bundle"), "example": example}}}
    props = {code: {"type": "string"} for code in place.form}
    return {"required": False, "description": "The search parameters as a form (the same "
            "as the query of a GET)", "content": {FORM: {"schema": {
                "type": "object", "additionalProperties": True, "properties": props}}}}


def _response(description: str, body: str | None, headers: tuple[str, ...],
              place: Place) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if body == "written":
        out["description"] = f"{description}. {_WRITTEN_TEXT}"
        out["content"] = fhir_content({"anyOf": [ref("schemas", place.resource),
                                                 ref("schemas", "OperationOutcome")]})
    elif body is not None:
        name = place.resource if body == "resource" else body
        out["content"] = fhir_content(ref("schemas", name))
    if headers:
        out["headers"] = {h: ref("headers", h) for h in headers}
    return out


def _operation_doc(op: Operation) -> str:
    rows = [f"| `{p.name}` | {p.use} | {p.type} | {p.min}..{p.max} | "
            f"{p.documentation.replace('|', chr(92) + '|')} |" for p in op.parameters]
    ins = [p for p in op.parameters if p.use == "in"]
    table = ["| name | use | type | card. | documentation |", "| --- | --- | --- | --- | --- |",
             *rows] if rows else []
    return "\n".join([
        op.documentation, "",
        f"Operation `${op.name}` ([operations]({SPEC}operations.html)); its definition is "
        f"`GET /fhir/{op.definition}`. " + ("It takes no input parameters (no body)."
                                           if not ins else ""), "", *table])


def operation(route: Route, place: Place) -> dict[str, Any]:
    """The OpenAPI operation of ``route`` at ``place``."""
    shape = shape_of(route)
    params: list[dict[str, Any]] = [
        ref("parameters", name) for name in _PATH_PARAM.findall(place.path)]
    post_search = route.method == "POST" and route.path.endswith("_search")
    if shape.search and not post_search:
        params += [ref("parameters", name) for name in place.search]
    params += [ref("parameters", name) for name in place.extra]
    if not post_search:
        params += [ref("parameters", name) for name in shape.query]
    params += [ref("parameters", name) for name in shape.headers]
    responses = {status: (ref("responses", "NotModified") if status == "304"
                          else _response(text, body, headers, place))
                 for status, text, body, headers in shape.ok}
    errors = shape.errors + (("415",) if post_search else ())
    responses |= {code: ref("responses", ERRORS[code]) for code in sorted(errors)}
    responses["default"] = ref("responses", "Error")
    description = " ".join(t for t in (shape.doc, place.note) if t)
    if route.operation is not None:
        description = _operation_doc(route.operation) + (f"\n\n{place.note}"
                                                          if place.note else "")
    out: dict[str, Any] = {"operationId": place.operation_id, "tags": [place.tag],
                           "summary": route.summary, "description": description,
                           "parameters": params, "responses": responses}
    if route.operation is not None:
        op = route.operation
        out["x-fhir-operation"] = {"name": op.name, "definition": op.definition,
                                   "affectsState": op.affects_state, "parameter": [
            {"name": p.name, "use": p.use, "type": p.type, "min": p.min, "max": p.max,
             "documentation": p.documentation} for p in op.parameters]}
    out["x-fhir-interaction"] = route.interaction
    if post_search:
        out["requestBody"] = _body("form", place)
    elif shape.body is not None and route.method != "GET":
        out["requestBody"] = _body(shape.body, place)
    return out
