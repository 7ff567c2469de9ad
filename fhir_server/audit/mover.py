"""Staged AuditEvents -> ordinary resources (searchable), a few hundred at a time.

Requests only append their events to ``audit_staging`` (see :mod:`.writer`): durable,
but not yet searchable. Every worker runs one :class:`Mover`; about twice a second (or
at once when this worker staged many events since it last moved) it claims the oldest
staged events::

    DELETE FROM audit_staging WHERE id IN (SELECT id ... ORDER BY id LIMIT n
                                           FOR UPDATE SKIP LOCKED) RETURNING event

indexes them (:class:`~fhir_server.audit.index.EventIndexer`) and writes them as
resources with ``fhir_audit_write`` (resource, history, index rows: one set-based
statement), in the transaction of the DELETE. So each staged event becomes a resource
exactly once: a failed move rolls back and leaves its events staged, and concurrent
movers (other workers, other replicas) skip each other's rows. A batch this large costs
the database much less per event than the small batches of the request path did.

The lag between an answer and its event being searchable is the interval plus one
move, well under two seconds while the movers keep up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from fhir_server.audit.index import EventIndexer
from fhir_server.search.index import IndexRows
from fhir_server.storage.index_rows import dump_index

log = logging.getLogger(__name__)

_CLAIM = sql.SQL("DELETE FROM audit_staging WHERE id IN (SELECT id FROM audit_staging"
                 " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING event::text")
_WRITE = sql.SQL("SELECT fhir_audit_write(%s::jsonb)")
_BACKLOG = sql.SQL("SELECT count(*), coalesce(extract(epoch FROM now() - min(staged_at)),"
                   " 0) FROM audit_staging")
#: seconds between moves when few events arrive
INTERVAL = 0.5
#: most events one move takes
BATCH = 400
#: events staged by this worker since its last move that start the next one at once
EARLY = 200
#: events indexed between two yields to the event loop (a move must not stall requests)
_SLICE = 25
#: seconds between two reports of the backlog (``fhir_audit_staged_events``)
REPORT_EVERY = 5.0


@dataclass(frozen=True, slots=True)
class Indexed:
    """A staged event with its index rows, as ``fhir_audit_write`` takes it."""

    id: str
    event: dict[str, Any]
    index: IndexRows


def payload(records: Sequence[Indexed]) -> str:
    """The JSON array ``fhir_audit_write`` takes."""
    parts = [b'{"id":' + orjson.dumps(r.id) + b',"content":' + orjson.dumps(r.event)
             + b',"index":' + (dump_index(r.index) or "null").encode() + b"}"
             for r in records]
    return (b"[" + b",".join(parts) + b"]").decode()


async def write(conn: Any, records: Sequence[Indexed]) -> None:
    """Write ``records`` as AuditEvent resources on ``conn``."""
    if records:
        await conn.execute(_WRITE, (payload(records),))


class Mover:
    """One worker's mover (see the module's docstring)."""

    def __init__(self, pool: AsyncConnectionPool, indexer: EventIndexer, *,
                 interval: float = INTERVAL, batch: int = BATCH,
                 report: Callable[[int, float], None] | None = None) -> None:
        self._pool = pool
        self._indexer = indexer
        self.interval = interval
        self.batch = batch
        self._report = report
        self._pending = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reported = 0.0

    def staged(self, count: int) -> None:
        """This worker staged ``count`` events (many: move now rather than later)."""
        self._pending += count
        if self._pending >= EARLY:
            self._wake.set()

    def start(self) -> None:
        """Start moving (in the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-mover")

    async def stop(self, drain_seconds: float = 5.0) -> int:
        """Stop the task, then move what is staged for at most ``drain_seconds`` (what
        is left stays staged, durably, for the next start); the events moved."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            return await self.drain(drain_seconds)
        except Exception as exc:
            log.warning("staged audit events not moved at shutdown (they stay staged):"
                        " %s", exc)
            return 0

    async def drain(self, seconds: float) -> int:
        """Move until nothing is staged (or ``seconds`` passed); the events moved."""
        deadline = time.monotonic() + seconds
        total = 0
        while time.monotonic() < deadline:
            moved = await self.move_once()
            total += moved
            if moved == 0:
                break
        return total

    async def move_once(self) -> int:
        """Move one batch of the oldest staged events; how many."""
        self._pending = 0
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_CLAIM, (self.batch,))
            rows = await cur.fetchall()
            if not rows:
                return 0
            records = []
            for n, (text,) in enumerate(rows, 1):
                event = orjson.loads(text)
                records.append(Indexed(event["id"], event, self._indexer.rows(event)))
                if n % _SLICE == 0:
                    await asyncio.sleep(0)
            await write(conn, records)
        return len(rows)

    async def backlog(self) -> tuple[int, float]:
        """Staged events (all workers') and the age in seconds of the oldest."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_BACKLOG)
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), float(row[1])

    async def _run(self) -> None:
        pause = self.interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            self._wake.clear()
            try:
                await self._move_all()
                pause = self.interval
                await self._maybe_report()
            except Exception as exc:  # the database is away: the events stay staged
                log.error("staged audit events not moved yet: %s", exc)
                pause = min(max(pause * 2, 1.0), 30.0)

    async def _move_all(self) -> None:
        """Move batches until one comes back short (nothing more staged)."""
        moved = self.batch
        while moved >= self.batch:
            moved = await self.move_once()

    async def _maybe_report(self) -> None:
        if self._report is None or time.monotonic() - self._reported < REPORT_EVERY:
            return
        self._reported = time.monotonic()
        self._report(*await self.backlog())
