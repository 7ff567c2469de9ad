"""Binary: content in object storage, metadata in PostgreSQL as an ordinary resource.

A Binary whose content is in object storage has no ``data`` value; an extension of the
element (``_data``: Binary, a plain Resource, has no extensions of its own),
``CONTENT_EXTENSION``, names its object (``key``), ``size`` and SHA-1 (``hash``,
base64, as ``Attachment.hash``). The object is stored durably before the Binary is written, so
a committed Binary always finds its content; an object whose Binary never committed is
an orphan the sweep removes (``blobs.sweep``).

``Binary.securityContext`` governs reading: a caller with a scope may read a Binary
when the scope lets it read the resource securityContext points to, or reads every
Binary (``user/Binary.rs``, ``system/*.*``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.blobs.store import BlobStore, StoredBlob, check_key
from fhir_server.errors import BadRequest, FhirError, PayloadTooLarge, Unprocessable
from fhir_server.service.access import AccessScope
from fhir_server.service.context import ServiceContext

CONTENT_EXTENSION = "http://fhir-server.dev/StructureDefinition/binary-content"


@dataclass(frozen=True, slots=True)
class BinaryContent:
    """Where a Binary's bytes are: an object (``key``) or inline ``data`` (base64)."""

    content_type: str
    size: int
    key: str | None = None
    data: bytes | None = None
    sha1: str | None = None


def store_of(ctx: ServiceContext) -> BlobStore:
    """The object store (every server has one; a context built without is a bug)."""
    if ctx.blobs is None:
        raise FhirError("no object storage is configured")
    return ctx.blobs


def content_extension(blob: StoredBlob) -> dict[str, Any]:
    """The extension naming a Binary's object."""
    return {"url": CONTENT_EXTENSION, "extension": [
        {"url": "key", "valueString": blob.key},
        {"url": "size", "valueUnsignedInt": blob.size},
        {"url": "hash", "valueBase64Binary": blob.sha1},
    ]}


def content_of(binary: dict[str, Any]) -> BinaryContent:
    """What a stored Binary holds and where."""
    content_type = str(binary.get("contentType") or "application/octet-stream")
    for extension in _ours(binary):
        parts = {e.get("url"): e for e in extension.get("extension", ())}
        return BinaryContent(content_type, int(parts["size"]["valueUnsignedInt"]),
                             key=check_key(parts["key"]["valueString"]),
                             sha1=parts["hash"]["valueBase64Binary"])
    data = base64.b64decode(binary.get("data", ""))
    return BinaryContent(content_type, len(data), data=data)


async def store(ctx: ServiceContext, chunks: AsyncIterable[bytes]) -> StoredBlob:
    """Store content durably within BINARY_MAX_BYTES (413 past it)."""
    return await store_of(ctx).put(chunks, ctx.settings.binary_max_bytes)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def store_bytes(ctx: ServiceContext, data: bytes) -> StoredBlob:
    """Store content already in memory (JSON ``data``, an attachment's)."""
    return await store(ctx, _one(data))


def resource(content_type: str, security_context: str | None, blob: StoredBlob,
             id: str | None = None) -> dict[str, Any]:
    """The Binary resource describing stored content."""
    binary: dict[str, Any] = {"resourceType": "Binary"}
    if id is not None:
        binary["id"] = id
    binary["contentType"] = content_type
    if security_context:
        binary["securityContext"] = {"reference": security_context}
    binary["_data"] = {"extension": [content_extension(blob)]}
    return binary


def _ours(binary: dict[str, Any]) -> list[dict[str, Any]]:
    """The content extensions on a Binary's ``_data``."""
    element = binary.get("_data")
    extensions = element.get("extension") if isinstance(element, dict) else None
    return [e for e in extensions or () if isinstance(e, dict)
            and e.get("url") == CONTENT_EXTENSION]


def security_context(header: str | None) -> str | None:
    """``X-Security-Context`` (http.html#binary): a relative reference, or BadRequest."""
    if header is None or not header.strip():
        return None
    value = header.strip()
    rtype, _, id = value.partition("/")
    if not rtype[:1].isupper() or not id or "/" in id:
        raise BadRequest(f"X-Security-Context {value!r} is not a reference like Patient/1")
    return value


async def check_security_context(ctx: ServiceContext, reference: str | None,
                                 scope: AccessScope | None) -> None:
    """A caller with a scope may only point a Binary at what it may read (else it could
    hang content on another patient's record)."""
    if reference is not None and scope is not None and not await _readable(ctx, reference):
        raise Unprocessable(f"securityContext {reference} is not a resource this "
                            "caller may read")


async def _readable(ctx: ServiceContext, reference: str) -> bool:
    """Whether the caller's scope admits the resource ``reference`` names."""
    rtype, _, id = reference.partition("/")
    if rtype not in ctx.resource_types or not id:
        return False
    found = await ctx.repository.read(rtype, id)
    return found is not None and not found.deleted


async def inline(ctx: ServiceContext, binary: dict[str, Any],
                 content: BinaryContent) -> dict[str, Any]:
    """The Binary as FHIR JSON: content up to BINARY_INLINE_MAX_BYTES as ``data``;
    larger content is only named, with the URL of its bytes (the Binary's own URL,
    read without asking for FHIR) added to the content extension."""
    if content.key is None:
        return binary
    if content.size <= ctx.settings.binary_inline_max_bytes:
        chunks = await store_of(ctx).open(content.key)
        data = b"".join([piece async for piece in chunks])
        binary["data"] = base64.b64encode(data).decode()
        return binary
    for extension in _ours(binary):
        extension["extension"].append(
            {"url": "url", "valueUrl": f"{ctx.base_url}/Binary/{binary.get('id')}"})
    return binary


async def externalize(ctx: ServiceContext, binary: dict[str, Any], id: str) -> bool:
    """A Binary written as JSON: ``data`` above BINARY_INLINE_MAX_BYTES moved to object
    storage. A content extension is taken only as the stored version has it (a client
    cannot point a Binary at an object it never uploaded). Whether ``binary`` changed."""
    ours = _ours(binary)
    if ours:
        current = await ctx.repository.read("Binary", id)
        stored = orjson.loads(current.content) if current and current.content else {}
        kept = [_without_url(e) for e in _ours(stored)]
        if "data" in binary or [_without_url(e) for e in ours] != kept:
            raise Unprocessable(f"the extension {CONTENT_EXTENSION} is the server's: "
                                "send the content as data or raw, not a reference to it")
        return False
    raw = binary.get("data")
    if not isinstance(raw, str):
        return False
    if len(raw) * 3 // 4 <= ctx.settings.binary_inline_max_bytes:
        return False
    data = decode(raw, "Binary.data")
    if len(data) > ctx.settings.binary_max_bytes:
        raise PayloadTooLarge(f"Binary.data ({len(data)} bytes) exceeds the limit of "
                              f"{ctx.settings.binary_max_bytes} bytes (BINARY_MAX_BYTES)")
    blob = await store_bytes(ctx, data)
    del binary["data"]
    element = binary.get("_data")
    if not isinstance(element, dict):
        element = {}  # not an element: the validator names it
    binary["_data"] = {**element, "extension": [*element.get("extension", ()),
                                                content_extension(blob)]}
    return True


def _without_url(extension: dict[str, Any]) -> dict[str, Any]:
    """A content extension without the ``url`` part reads add (a Binary read as JSON
    and written back carries it)."""
    return {**extension, "extension": [e for e in extension.get("extension", ())
                                       if e.get("url") != "url"]}


_WHITESPACE = re.compile(r"\s+")


def decode(raw: str, where: str) -> bytes:
    """base64 ``data``, or BadRequest."""
    try:  # base64Binary allows whitespace between the groups (long values are wrapped)
        return base64.b64decode(_WHITESPACE.sub("", raw), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where} is not valid base64") from None
