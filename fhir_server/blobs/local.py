"""Objects in a folder of the local disk (``DATA_DIR/blobs``): embedded mode, one host.

An object is the file ``sha256/<2 hex>/<64 hex>``; a body is written to ``pending/``,
flushed to disk (``fsync``) and renamed to its key, so a reader sees either nothing or
the whole object, and an acknowledged one survives a crash. File work runs in threads.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from fhir_server.blobs.store import (
    CONTENT_PREFIX,
    PENDING_PREFIX,
    BlobInfo,
    Digest,
    StoredBlob,
    check_key,
    pieces,
)
from fhir_server.errors import FhirError

#: bytes per read and per write: large enough that thread hops cost nothing
CHUNK = 1024 * 1024


class LocalStore:
    """A BlobStore on a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "pending").mkdir(parents=True, exist_ok=True)
        (root / "sha256").mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.startswith(CONTENT_PREFIX):
            digest = key[len(CONTENT_PREFIX):]
            return self.root / "sha256" / digest[:2] / digest
        return self.root / key

    async def put(self, chunks: AsyncIterable[bytes], max_bytes: int) -> StoredBlob:
        """Write to ``pending/``, fsync, rename to the content key."""
        pending = self._path(PENDING_PREFIX + uuid.uuid4().hex)
        file = await asyncio.to_thread(pending.open, "wb")
        digest = Digest(max_bytes)
        try:
            async for piece in pieces(chunks, CHUNK, digest):
                await asyncio.to_thread(_write, file, piece, digest)
            blob = digest.blob()
            await asyncio.to_thread(self._commit, file, pending, self._path(blob.key))
            return blob
        except BaseException:
            await asyncio.shield(asyncio.to_thread(_discard, file, pending))
            raise

    @staticmethod
    def _commit(file: BinaryIO, pending: Path, target: Path) -> None:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        target.parent.mkdir(exist_ok=True)
        # Replacing an object of the same content renews its time, which the sweep
        # reads: an orphan written again is young again.
        os.replace(pending, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)

    async def open(self, key: str, start: int = 0, length: int | None = None
                   ) -> AsyncIterator[bytes]:
        """The object's bytes from ``start``, ``length`` of them (all when None)."""
        path = self._path(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise FhirError(f"the object {key} is missing from the blob folder") from None
        return _read(file, start, length)

    async def objects(self) -> AsyncIterator[BlobInfo]:
        """Every content and pending object with its modification time."""
        for info in await asyncio.to_thread(self._list):
            yield info

    def _list(self) -> list[BlobInfo]:
        found: list[BlobInfo] = []
        for folder, prefix in ((self.root / "pending", PENDING_PREFIX),
                               (self.root / "sha256", CONTENT_PREFIX)):
            for path in folder.rglob("*"):
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # renamed or swept meanwhile
                if path.is_file():
                    found.append(BlobInfo(prefix + path.name,
                                          datetime.fromtimestamp(stat.st_mtime, UTC)))
        return found

    async def delete(self, key: str) -> None:
        """Remove the object's file."""
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    def presigned_url(self, key: str, seconds: int, content_type: str) -> str | None:
        return None  # a folder of the server's: only the server serves it

    async def close(self) -> None:
        """Nothing to release."""


def _write(file: BinaryIO, piece: bytes, digest: Digest) -> None:
    digest.update(piece)
    file.write(piece)


def _discard(file: BinaryIO, pending: Path) -> None:
    file.close()
    pending.unlink(missing_ok=True)


async def _read(file: BinaryIO, start: int, length: int | None) -> AsyncIterator[bytes]:
    try:
        await asyncio.to_thread(file.seek, start)
        left = length
        while left is None or left > 0:
            piece = await asyncio.to_thread(file.read, CHUNK if left is None else
                                            min(CHUNK, left))
            if not piece:
                return
            if left is not None:
                left -= len(piece)
            yield piece
    finally:
        file.close()
