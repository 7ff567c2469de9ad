"""Binary over the wire (http.html#binary): raw content of any type in and out, and
the Binary resource as FHIR JSON (or FHIR XML) when that is what the client sends or asks
for (``application/xml`` and ``text/xml`` are raw content here: a CDA document is one).

``POST``/``PUT`` with a Content-Type other than FHIR JSON stream the body to object
storage (within BINARY_MAX_BYTES) and store a Binary naming it; ``X-Security-Context``
sets its securityContext. ``GET`` answers the raw bytes (ETag, Content-Length, single
byte ranges) unless ``Accept`` or ``_format`` prefer FHIR JSON; a Bundle entry always
gets the resource.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from fhir_server.api import history, instance, search, type
from fhir_server.api.body import parse_body, read_limited
from fhir_server.api.common import if_match, written
from fhir_server.api.messages import FhirRequest, FhirResponse, RawContent
from fhir_server.api.negotiation import (
    BODY_TYPES,
    FHIR_XML_BODY_TYPES,
    accepted,
    is_fhir_json,
    response_media_type,
)
from fhir_server.api.subsetting import subset
from fhir_server.errors import (
    BadRequest,
    Forbidden,
    NotAcceptable,
    PayloadTooLarge,
    RangeNotSatisfiable,
)
from fhir_server.service import binary as binary_service
from fhir_server.service import read as read_service
from fhir_server.service import write as write_service
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import StoredVersion

_TYPE = "Binary"
#: sent with raw content: a stored HTML or SVG must not run as a page of this origin
_RAW_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox",
                "Accept-Ranges": "bytes"}


def _as_binary(request: FhirRequest) -> None:
    request.params["resource_type"] = _TYPE


def _require(request: FhirRequest, permission: str, what: str) -> None:
    """403 before any byte is stored (the routes' paths name no type parameter)."""
    scope = request.context.scope
    if scope is not None and not scope.permits(permission, _TYPE):
        raise Forbidden(f"the token's scopes do not allow {what} ({permission}) on Binary")


def _raw_body(request: FhirRequest) -> bool:
    """Whether the body is raw content rather than a FHIR resource."""
    if request.stream is None:
        return False
    media = (request.header("content-type") or "").split(";")[0].strip().lower()
    return media not in BODY_TYPES and media not in FHIR_XML_BODY_TYPES


async def _fhir_body(request: FhirRequest, ctx: ServiceContext) -> None:
    """A Binary sent as FHIR JSON: its body collected as every other route's is, and
    its securityContext checked as a raw upload's header is."""
    if request.stream is not None:
        request.body = await read_limited(request.stream, request.header("content-length"),
                                          ctx.settings.max_body_bytes)
        request.stream = None
    scope = request.context.scope
    if scope is None:
        return
    binary = request.resource
    if binary is None:
        binary = parse_body(request.body or b"", request.header("content-type"),
                            ctx.settings.max_json_depth)
        request.resource = binary  # parsed once: the create or update takes it as it is
    context = binary.get("securityContext") if isinstance(binary, dict) else None
    reference = context.get("reference") if isinstance(context, dict) else None
    if isinstance(reference, str):
        await binary_service.check_security_context(ctx, reference, scope)


def _chunks(request: FhirRequest, ctx: ServiceContext) -> AsyncIterator[bytes]:
    """The raw body, refused at once (413) when its declared length is too large."""
    assert request.stream is not None
    declared = request.header("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(declared) > ctx.settings.binary_max_bytes:
            raise PayloadTooLarge(f"the content ({declared} bytes) exceeds the limit of "
                                  f"{ctx.settings.binary_max_bytes} bytes (BINARY_MAX_BYTES)")
    return request.stream


def _content_type(request: FhirRequest) -> str:
    return (request.header("content-type") or "application/octet-stream").strip()


async def _stored_content(request: FhirRequest, ctx: ServiceContext,
                          id: str | None = None) -> dict[str, Any]:
    """The raw body stored as an object (its securityContext checked first), and the
    Binary resource naming it."""
    chunks = _chunks(request, ctx)
    reference = binary_service.security_context(request.header("x-security-context"))
    await binary_service.check_security_context(ctx, reference, request.context.scope)
    blob = await binary_service.store(ctx, chunks)
    return binary_service.resource(_content_type(request), reference, blob, id)


async def create_binary(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """create: raw content, or a Binary resource in FHIR JSON."""
    _as_binary(request)
    _require(request, "c", "create")
    if not _raw_body(request):
        await _fhir_body(request, ctx)
        return await type.create(request, ctx)
    body = await _stored_content(request, ctx)
    result = await write_service.create(ctx, _TYPE, body, write_service.dumps(body),
                                        request.header("if-none-exist"), stored=True)
    return written(request, result, 200 if result.outcome == "found" else 201)


async def update_binary(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """update: raw content, or a Binary resource in FHIR JSON."""
    _as_binary(request)
    _require(request, "u", "update")
    if not _raw_body(request):
        await _fhir_body(request, ctx)
        return await instance.update(request, ctx)
    id = request.params["id"]
    body = await _stored_content(request, ctx, id)
    result = await write_service.update(ctx, _TYPE, id, body, write_service.dumps(body),
                                        if_match(request), stored=True)
    return written(request, result, 201 if result.outcome == "created" else 200)


async def read_binary(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """read: the raw bytes or the Binary resource."""
    _as_binary(request)  # the storage applies the securityContext with the scope
    version = await read_service.read(ctx, _TYPE, request.params["id"])
    return await _answer(request, ctx, version)


async def vread_binary(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """vread: one version's raw bytes or resource."""
    _as_binary(request)
    params = request.params
    version = await read_service.vread(ctx, _TYPE, params["id"], params["vid"])
    return await _answer(request, ctx, version)


async def search_binary(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """search: the Binaries the scope reads (through their securityContext too, in the
    storage's condition)."""
    _as_binary(request)
    return await search.search_type(request, ctx)


async def history_binary(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """history of every Binary: as search."""
    _as_binary(request)
    return await history.history_type(request, ctx)


async def _answer(request: FhirRequest, ctx: ServiceContext,
                  version: StoredVersion) -> FhirResponse:
    assert version.content is not None
    binary: dict[str, Any] = orjson.loads(version.content)
    if instance.not_modified(request, version):
        return FhirResponse(304, version=version)
    content = binary_service.content_of(binary)
    if not _wants_raw(request, content.content_type):
        resource = await binary_service.inline(ctx, binary, content)
        text = write_service.dumps(resource)
        return FhirResponse(200, subset(request, ctx, text) or text, version=version)
    start, length = _range(request, content.size)
    headers = dict(_RAW_HEADERS)
    status = 200
    if length != content.size:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{content.size}"
    if request.method == "HEAD" or length == 0:
        chunks = _one(b"")
    elif content.key is None:
        chunks = _one((content.data or b"")[start:start + length])
    else:
        chunks = await binary_service.store_of(ctx).open(content.key, start, length)
    return FhirResponse(status, version=version, headers=headers,
                        raw=RawContent(content.content_type, chunks, length))


def _wants_raw(request: FhirRequest, content_type: str) -> bool:
    """Raw bytes unless the client prefers FHIR JSON or XML (406 when it accepts neither)."""
    if not request.raw:
        return False  # a Bundle entry holds resources
    requested = request.query_value("_format")
    if requested:
        response_media_type(None, requested)  # 406 for a format not served
        return False
    accept = request.header("accept")
    if not accept:
        return True
    media = content_type.split(";")[0].strip().lower()
    family = media.split("/")[0] + "/*"
    for wanted in accepted(accept):
        if wanted in (media, family, "*/*"):
            return True
        # application/xml in a browser's Accept is no wish for FHIR XML (nor is it as a
        # body here): only the FHIR-specific XML types ask for the resource
        if is_fhir_json(wanted) or wanted in FHIR_XML_BODY_TYPES:
            return False
    raise NotAcceptable(f"this Binary is {media}; Accept ({accept}) takes neither it nor "
                        "application/fhir+json or application/fhir+xml")


def _range(request: FhirRequest, size: int) -> tuple[int, int]:
    """The one byte range asked for (RFC 9110 14.2) as (start, length); the whole
    content when there is none, when it is not one plain ``bytes`` range (ignoring it
    is allowed), or when ``If-Range`` does not name this version strongly (our ETags
    are weak, so it never does)."""
    header = request.header("range")
    if header is None or request.header("if-range") is not None:
        return 0, size
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or "," in spec:
        return 0, size
    if not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return 0, size
    if first == "":  # the last N bytes
        if last == "" or int(last) == 0:
            raise RangeNotSatisfiable(f"the range {header!r} selects no byte", size)
        length = min(int(last), size)
        return size - length, length
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        raise RangeNotSatisfiable(f"the range {header!r} starts past the content's "
                                  f"{size} bytes", size)
    if end < start:
        return 0, size  # an invalid range is ignored
    return start, end - start + 1


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data

