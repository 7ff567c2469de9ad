"""The sweep: objects no stored Binary version refers to are deleted once they are
older than a grace period (``BLOB_ORPHAN_GRACE_SECONDS``).

An upload stores its object before the Binary that refers to it is committed, so an
object without a reference is either a write still in progress (young) or a failed
one (a rolled-back transaction, a crash mid-upload: old). Several workers or replicas
may sweep at once: deleting twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from fhir_server.blobs.store import PENDING_PREFIX, BlobStore

log = logging.getLogger(__name__)

#: which of these keys some stored version refers to
References = Callable[[Sequence[str]], Awaitable[set[str]]]
#: keys asked about at once
BATCH = 500


async def sweep(store: BlobStore, referenced: References, grace_seconds: float,
                now: datetime | None = None) -> int:
    """Delete the orphans older than the grace period; the number deleted."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=grace_seconds)
    deleted = 0
    candidates: list[str] = []
    async for info in store.objects():
        if info.modified > cutoff:
            continue
        if info.key.startswith(PENDING_PREFIX):  # an upload that never finished
            await store.delete(info.key)
            deleted += 1
            continue
        candidates.append(info.key)
        if len(candidates) >= BATCH:
            deleted += await _delete_orphans(store, referenced, candidates)
            candidates = []
    if candidates:
        deleted += await _delete_orphans(store, referenced, candidates)
    return deleted


async def _delete_orphans(store: BlobStore, referenced: References,
                          keys: list[str]) -> int:
    kept = await referenced(keys)
    orphans = [k for k in keys if k not in kept]
    for key in orphans:
        await store.delete(key)
    return len(orphans)


async def sweep_forever(store: BlobStore, referenced: References, grace_seconds: float,
                        interval_seconds: float) -> None:
    """Sweep every ``interval_seconds`` (a task of the lifespan); failures are logged
    and retried at the next round."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            removed = await sweep(store, referenced, grace_seconds)
        except Exception as exc:  # the database or the bucket is away: next round
            log.warning("blob sweep failed: %s", exc)
            continue
        if removed:
            log.info("blob sweep removed %d orphan objects", removed)
