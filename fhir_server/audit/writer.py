"""Storing AuditEvents durably, before the answer: into the staging table.

An event is first appended to ``audit_staging`` (migration V9): one small row, no
index but its key, so storing it costs little next to the request it records. The
:mod:`.mover` turns staged events into ordinary, searchable resources a moment later.

A write's event is staged by :func:`insert` on the write's connection before its
transaction commits (both or neither). Every other event (reads, searches, refusals,
failures) goes through :class:`GroupWriter`: requests put their events on one queue and
wait; one task takes everything queued, stages it with one statement (one transaction,
one WAL flush) and wakes each request once its own events are committed. While a batch
is being written the next one gathers, so under load many requests share a commit and
the cost per event stays small; when idle a batch is a single event, stored at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

_STAGE = sql.SQL("INSERT INTO audit_staging (event)"
                 " SELECT e FROM json_array_elements(%s::json) e")
#: most events one statement stores (a larger backlog is stored in several)
MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class Record:
    """One event ready to store: its id and JSON (``id`` included)."""

    id: str
    event: dict[str, Any]


def payload(records: Sequence[Record]) -> str:
    """The JSON array of the events, as staged.

    An event tells what was asked, and a refused request may have asked with a NUL
    character (``_history/%00``), which PostgreSQL's JSON cannot hold: it is written as
    U+FFFD, so that the event is still recorded."""
    raw = orjson.dumps([r.event for r in records])
    if b"\\u0000" in raw:  # rare: only then walk the events
        raw = orjson.dumps([_without_nul(r.event) for r in records])
    return raw.decode()


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


async def insert(conn: Any, records: Sequence[Record]) -> None:
    """Stage ``records`` on ``conn`` (in its transaction, if one is open)."""
    if records:
        await conn.execute(_STAGE, (payload(records),))


class GroupWriter:
    """One queue and one task per process, committing events in batches.

    ``staged`` (if given) is told how many events each committed batch held (the mover
    uses it to move early when many are waiting).
    """

    def __init__(self, pool: AsyncConnectionPool,
                 staged: Callable[[int], None] | None = None) -> None:
        self._pool = pool
        self._staged = staged
        self._queue: asyncio.Queue[tuple[list[Record], asyncio.Future[None]]] = (
            asyncio.Queue())
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the flushing task (in the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        """Store what is queued, then stop the task."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def store(self, records: list[Record]) -> None:
        """Queue ``records`` and return once they are committed (or raise why not)."""
        if not records:
            return
        self.start()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((records, done))
        await done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0][0])
            while size < MAX_BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                size += len(item[0])
            try:
                await self._flush([r for records, _ in batch for r in records])
            except Exception as exc:  # every waiter learns its events are not stored
                log.error("audit events not stored (%d requests): %s", len(batch), exc)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                    self._queue.task_done()
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
                self._queue.task_done()
            if self._staged is not None:
                self._staged(size)

    async def _flush(self, records: list[Record]) -> None:
        # As a FHIR request takes its connection: at once a 503 while the database is
        # known to be down (an answer must not wait DB_POOL_TIMEOUT for its event).
        checkout = getattr(self._pool, "checkout", self._pool.connection)
        async with checkout() as conn:
            await insert(conn, records)
