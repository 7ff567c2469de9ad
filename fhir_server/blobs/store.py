"""Object storage of Binary content: the protocol every store implements, and what they
share (content keys, digests, regrouping a body into pieces within its size limit).

Objects are content-addressed: the key of an object is ``sha256/<hex digest>``, so a
retried upload of the same bytes lands on the same object, never a second one. A body
is first written under ``pending/<random>`` while its digest is computed, then moved
to its key; a pending object left by a crash is removed by the sweep (``sweep.py``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from fhir_server.errors import PayloadTooLarge

CONTENT_PREFIX = "sha256/"
PENDING_PREFIX = "pending/"
#: what keys look like (anything else is refused before it reaches a path)
_KEY = re.compile(r"sha256/[0-9a-f]{64}|pending/[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """An object durably stored: its key, size and SHA-1 (base64, ``Attachment.hash``)."""

    key: str
    size: int
    sha1: str


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """One object as listed: its key and when it was last written."""

    key: str
    modified: datetime


class BlobStore(Protocol):
    """Where Binary content lives: an S3 API (``s3.py``) or a local folder (``local.py``)."""

    async def put(self, chunks: AsyncIterable[bytes], max_bytes: int) -> StoredBlob:
        """Store a body durably under its content key; PayloadTooLarge past
        ``max_bytes`` (nothing is left visible then, nor on any other failure)."""
        ...

    async def open(self, key: str, start: int = 0, length: int | None = None
                   ) -> AsyncIterator[bytes]:
        """The bytes ``[start, start + length)`` of an object as chunks (all of it from
        ``start`` when ``length`` is None); the object is looked up before this returns."""
        ...

    def objects(self) -> AsyncIterator[BlobInfo]:
        """Every object, content and pending ones."""
        ...

    async def delete(self, key: str) -> None:
        """Remove an object (no error when it is gone already)."""
        ...

    def presigned_url(self, key: str, seconds: int, content_type: str) -> str | None:
        """A URL that reads the object without credentials for ``seconds`` (None: the
        store has no such URLs; its objects are served through the server)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@dataclass
class Digest:
    """SHA-256 (the key) and SHA-1 (``Attachment.hash``) of a body as it streams."""

    max_bytes: int
    size: int = 0
    _sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    _sha1: hashlib._Hash = field(default_factory=hashlib.sha1)

    def update(self, piece: bytes) -> None:
        """Add a piece (hashlib releases the GIL: call it off the event loop)."""
        self._sha256.update(piece)
        self._sha1.update(piece)

    def blob(self) -> StoredBlob:
        """The stored object this digest names."""
        return StoredBlob(CONTENT_PREFIX + self._sha256.hexdigest(), self.size,
                          base64.b64encode(self._sha1.digest()).decode())


async def pieces(chunks: AsyncIterable[bytes], size: int, digest: Digest
                 ) -> AsyncIterator[bytes]:
    """The body regrouped into pieces of ``size`` bytes (the last one shorter, maybe
    empty only when the body is), counted against ``digest.max_bytes`` (413 past it)."""
    buffer = bytearray()
    async for chunk in chunks:
        digest.size += len(chunk)
        if digest.size > digest.max_bytes:
            raise PayloadTooLarge(f"the content exceeds the limit of {digest.max_bytes} "
                                  "bytes (BINARY_MAX_BYTES)")
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer or digest.size == 0:
        yield bytes(buffer)


def check_key(key: str) -> str:
    """``key`` if it is a content or pending key, else ValueError (stored metadata is trusted only
    this far: it never becomes a path or an object name unchecked)."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"not an object key: {key!r}")
    return key
