"""Attachments (DocumentReference.content.attachment, Media.content,
DiagnosticReport.presentedForm, any ``valueAttachment``...): inline ``data`` above
ATTACHMENT_INLINE_MAX_BYTES moves to object storage on write.

Each such attachment becomes a Binary (its securityContext the resource holding it, so
whoever may read the resource may read the content) and keeps ``url`` (``Binary/id``),
``size`` and ``hash`` (SHA-1, base64, as Attachment defines). The objects are stored
before the Binaries and the resource are written, in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from fhir_server.errors import PayloadTooLarge, Unprocessable
from fhir_server.service import binary as binary_service
from fhir_server.service.context import ServiceContext


def attachments(definitions: Any, resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every Attachment element of a resource, in contained resources and extensions
    too, found by the element types of the definitions."""
    stack: list[tuple[dict[str, Any], str]] = [(resource, str(resource.get("resourceType")))]
    while stack:
        node, path = stack.pop()
        properties = definitions.properties(path)
        for key, value in node.items():
            info = properties.get(key)
            if info is None or key.startswith("_"):
                continue
            type_name = _type_of(info, key)
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, dict):
                    continue
                if type_name == "Attachment":
                    yield item
                elif info.is_backbone:
                    stack.append((item, info.path))
                elif type_name == "Resource":
                    stack.append((item, str(item.get("resourceType"))))
                elif type_name in definitions.complex_types:
                    stack.append((item, type_name))


def _type_of(info: Any, key: str) -> str:
    """The type of element ``info`` under the JSON name ``key`` (a choice's suffix)."""
    if not info.is_choice:
        return str(info.types[0]) if info.types else ""
    suffix = key[len(info.name) - 3:]
    return next((t for t in info.types if t[:1].upper() + t[1:] == suffix), "")


async def externalize(ctx: ServiceContext, resource_type: str, id: str,
                      resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Move large inline attachments of ``resource`` to storage; the Binaries to write
    with it (empty: nothing moved, ``resource`` unchanged)."""
    limit = ctx.settings.attachment_inline_max_bytes
    binaries: list[dict[str, Any]] = []
    for attachment in list(attachments(ctx.definitions, resource)):
        raw = attachment.get("data")
        if not isinstance(raw, str) or len(raw) * 3 // 4 <= limit:
            continue
        data = binary_service.decode(raw, "Attachment.data")
        if len(data) <= limit:
            continue
        if len(data) > ctx.settings.binary_max_bytes:
            raise PayloadTooLarge(
                f"an attachment ({len(data)} bytes) exceeds the limit of "
                f"{ctx.settings.binary_max_bytes} bytes (BINARY_MAX_BYTES)")
        blob = await binary_service.store_bytes(ctx, data)
        for element, value in (("size", blob.size), ("hash", blob.sha1)):
            if element in attachment and attachment[element] != value:
                raise Unprocessable(f"Attachment.{element} {attachment[element]!r} is not "
                                    f"the {element} of its data ({value!r})")
        binary_id = str(uuid.uuid4())
        binaries.append(binary_service.resource(
            str(attachment.get("contentType") or "application/octet-stream"),
            f"{resource_type}/{id}", blob, binary_id))
        del attachment["data"]
        attachment.update(url=f"Binary/{binary_id}", size=blob.size, hash=blob.sha1)
    return binaries
