"""What the handlers share: request bodies, preconditions, and the answers to writes."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from fhir_server.api.body import parse_json, parse_xml
from fhir_server.api.headers import instant, parse_etag, prefer_return
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.negotiation import body_format
from fhir_server.errors import BadRequest, UnsupportedMediaType
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import StoredVersion, WriteResult
from fhir_server.service.write import ANY_VERSION, IfMatch, dumps

JSON_PATCH = "application/json-patch+json"
FHIR_JSON = "application/fhir+json"


def resource_body(request: FhirRequest, ctx: ServiceContext) -> tuple[Any, str]:
    """The resource in the request, parsed and as JSON text (media type, UTF-8 and depth
    checked for a body from the wire; a Bundle entry's resource is already parsed). JSON
    is kept as sent; XML becomes the JSON a client would have sent."""
    if request.resource is not None:
        return request.resource, dumps(request.resource)
    raw = request.body or b""
    if body_format(request.header("content-type")) == "xml":
        value = parse_xml(raw, ctx.settings.max_json_depth)
        return value, dumps(value)
    value = parse_json(raw, ctx.settings.max_json_depth)
    return value, raw.decode("utf-8-sig")


def patch_body(request: FhirRequest, ctx: ServiceContext) -> tuple[str, Any]:
    """A PATCH's patch: (media type, parsed JSON): JSON Patch, or FHIRPath Patch
    Parameters (in JSON or XML: XML is given as the JSON it stands for); in a Bundle
    entry a Binary holding JSON Patch, or the Parameters."""
    if request.resource is not None:
        return _entry_patch(request.resource, ctx.settings.max_json_depth)
    content_type = request.header("content-type") or ""
    media = content_type.split(";")[0].strip().lower()
    if media != JSON_PATCH:
        try:
            found = body_format(content_type)
        except UnsupportedMediaType as exc:
            raise UnsupportedMediaType(
                f"{exc.diagnostics}; a PATCH takes {JSON_PATCH} (JSON Patch) or "
                "application/fhir+json or application/fhir+xml (a FHIRPath Patch "
                "Parameters resource)") from None
        if found == "xml":
            return FHIR_JSON, parse_xml(request.body or b"", ctx.settings.max_json_depth)
    return media, parse_json(request.body or b"", ctx.settings.max_json_depth)


def _entry_patch(resource: Any, max_depth: int) -> tuple[str, Any]:
    if isinstance(resource, dict) and resource.get("resourceType") == "Parameters":
        return FHIR_JSON, resource
    if isinstance(resource, dict) and resource.get("resourceType") == "Binary":
        media = resource.get("contentType", "")
        data = resource.get("data", "")
        try:
            raw = base64.b64decode(data if isinstance(data, str) else "")
        except ValueError:
            raise BadRequest("the Binary of a PATCH entry does not hold base64") from None
        try:
            # checked as a body from the wire is: NUL, depth and numbers
            return media, parse_json(raw, max_depth)
        except BadRequest as exc:
            raise BadRequest(f"the Binary of a PATCH entry: {exc.diagnostics}") from None
    raise BadRequest("a PATCH entry needs a Binary or Parameters resource")


def if_match(request: FhirRequest) -> IfMatch:
    """The version in ``If-Match``, ``*`` (any current version), or None without one."""
    value = request.header("if-match")
    if value is None:
        return None
    return ANY_VERSION if value.strip() == ANY_VERSION else parse_etag(value)


def criteria(request: FhirRequest) -> str:
    """The search criteria of a conditional interaction on a type (its query)."""
    if not request.query:
        raise BadRequest(f"{request.method} on a resource type needs search criteria "
                         "(a conditional interaction)")
    return request.query


def location(version: StoredVersion) -> str:
    """The version-specific path of a version, relative to the base."""
    return f"{version.resource_type}/{version.id}/_history/{version.version_id}"


def information(text: str) -> dict[str, Any]:
    """A one-issue informational OperationOutcome (``Prefer: return=OperationOutcome``)."""
    return {"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "informational", "diagnostics": text}]}


def written(request: FhirRequest, result: WriteResult, status: int) -> FhirResponse:
    """The answer to a create or update, as ``Prefer: return=...`` asks."""
    version = result.version
    assert version is not None
    answer = FhirResponse(status, version=version, location=location(version))
    preference = prefer_return(request.header("prefer"))
    if preference == "representation":
        answer.body = version.content
    elif preference == "OperationOutcome":
        answer.outcome = information(
            f"{version.resource_type}/{version.id} {result.outcome}; version "
            f"{version.version_id} at {instant(version.last_updated)}")
    return answer


def deleted(request: FhirRequest, result: WriteResult, what: str) -> FhirResponse:
    """The answer to a delete: 204, or 200 with an OperationOutcome when preferred."""
    version = result.version if result.outcome == "deleted" else None
    if prefer_return(request.header("prefer")) == "OperationOutcome":
        text = f"{what} deleted" if version is not None else f"{what}: nothing to delete"
        return FhirResponse(200, outcome=information(text), version=version)
    return FhirResponse(204, version=version)


def query_string(pairs: Iterable[tuple[str, str]]) -> str:
    """``name=value&...`` for Bundle links, percent-encoded as usual except for the
    characters a FHIR query reads plainly and RFC 3986 allows in a query (``:`` of
    modifiers, ``,`` of OR lists, ``/`` of references, ``$`` of composites); decoded,
    the query is the same either way."""
    return urlencode(list(pairs), safe=":,/$")
