"""Background jobs in PostgreSQL: claimed with SKIP LOCKED, leased, resumable by cursor."""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from fhir_server.errors import Conflict
from fhir_server.service.repository import Job, JobStart
from fhir_server.storage.errors import translated
from fhir_server.storage.index_rows import dump_index

_COLUMNS = sql.SQL("id, kind, params, status, cursor, processed, total, error, created_at,"
                   " updated_at")


#: how often a start looks again when the active job it found is gone the next moment
_START_ATTEMPTS = 3


def _job(row: tuple[Any, ...] | None) -> Job | None:
    return None if row is None else Job(*row)


async def _active(conn: AsyncConnection[Any], kind: str, scope: str) -> Job | None:
    """The queued or running job of ``kind`` and ``scope``, locked, or None."""
    cur = await conn.execute(sql.SQL(
        "SELECT {} FROM job WHERE kind = %s AND scope = %s AND status IN ('queued',"
        " 'running') FOR UPDATE").format(_COLUMNS), (kind, scope))
    return _job(await cur.fetchone())


async def _count(conn: AsyncConnection[Any], resource_types: list[str] | None) -> int:
    """Current resources of the given types (all when None)."""
    if resource_types is None:
        cur = await conn.execute("SELECT count(*) FROM resource WHERE NOT deleted")
    else:
        cur = await conn.execute("SELECT count(*) FROM resource WHERE NOT deleted"
                                 " AND resource_type = ANY(%s)", (resource_types,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _mark_building(conn: AsyncConnection[Any], job_id: int, urls: list[str]) -> None:
    """The custom parameters ``urls`` are being built by job ``job_id``."""
    for url in urls:
        await conn.execute(
            "INSERT INTO search_param_state (url, status, job_id) VALUES"
            " (%s, 'building', %s) ON CONFLICT (url) DO UPDATE SET"
            " status = 'building', job_id = excluded.job_id, updated_at = now()",
            (url, job_id))


class PgJobs:
    """Job rows and the resource scans that reindexing needs."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def start(self, kind: str, scope: str, params: dict[str, Any],
                    resource_types: list[str] | None, building_urls: list[str]
                    ) -> JobStart:
        """Queue a job unless one of its kind and scope is active (then: that one).

        The partial unique index of V10 decides between concurrent starts (any number
        of workers and replicas): the loser's insert does nothing and it finds the
        winner's job. The active job is locked while it is looked at, so a queued one
        is not claimed before the parameters it is to build are marked."""
        with translated():
            async with self._pool.connection() as conn, conn.transaction():
                for _ in range(_START_ATTEMPTS):
                    job = await _active(conn, kind, scope)
                    created = False
                    if job is None:
                        total = await _count(conn, resource_types)
                        cur = await conn.execute(sql.SQL(
                            "INSERT INTO job (kind, scope, params, total)"
                            " VALUES (%s, %s, %s, %s) ON CONFLICT (kind, scope)"
                            " WHERE status IN ('queued', 'running') AND scope IS NOT NULL"
                            " DO NOTHING RETURNING {}").format(_COLUMNS),
                            (kind, scope, Jsonb(params), total))
                        job = _job(await cur.fetchone())
                        created = job is not None
                        # Lost the race: the winner's job is committed by now.
                        job = job or await _active(conn, kind, scope)
                    if job is not None:
                        break
                else:  # the active job ended each time before it could be read
                    raise Conflict(f"another {kind} job of {scope} started and ended "
                                   "meanwhile; try again")
                if created or job.status == "queued":
                    await _mark_building(conn, job.id, building_urls)
                    return JobStart(job, created)
                cur = await conn.execute(
                    "SELECT url FROM search_param_state WHERE job_id = %s", (job.id,))
                built = {str(r[0]) for r in await cur.fetchall()}
                return JobStart(job, False, tuple(u for u in building_urls if u not in built))

    async def cancel(self, job_id: int, done_too: bool = False) -> Job | None:
        """Cancel a queued or running job (its worker sees it at its next batch), and
        with ``done_too`` a finished one (an export whose files may go); the job as it
        is then: cancelled, or as it had ended; None when unknown."""
        ended = ("queued", "running", "done") if done_too else ("queued", "running")
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql.SQL(
                    "UPDATE job SET status = 'cancelled', lease_until = NULL,"
                    " updated_at = now() WHERE id = %s AND status = ANY(%s)"
                    " RETURNING {}").format(_COLUMNS), (job_id, list(ended)))
                job = _job(await cur.fetchone())
                if job is not None:
                    return job
                cur = await conn.execute(sql.SQL("SELECT {} FROM job WHERE id = %s").format(
                    _COLUMNS), (job_id,))
                return _job(await cur.fetchone())

    async def get(self, job_id: int) -> Job | None:
        """One job, or None."""
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql.SQL("SELECT {} FROM job WHERE id = %s").format(
                    _COLUMNS), (job_id,))
                return _job(await cur.fetchone())

    async def claim(self, kind: str, lease_seconds: float) -> Job | None:
        """Take the oldest queued job, or a running one whose lease expired."""
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql.SQL(
                    "UPDATE job SET status = 'running', updated_at = now(),"
                    " lease_until = now() + make_interval(secs => %s)"
                    " WHERE id = (SELECT id FROM job WHERE kind = %s AND (status = 'queued'"
                    " OR (status = 'running' AND lease_until < now())) ORDER BY id"
                    " FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING {}").format(_COLUMNS),
                    (lease_seconds, kind))
                return _job(await cur.fetchone())

    async def batch(self, after: int, resource_types: list[str] | None,
                    limit: int) -> list[tuple[int, str]]:
        """The next current resources by rid: (rid, content)."""
        type_filter = sql.SQL("") if resource_types is None else sql.SQL(
            " AND resource_type = ANY(%s)")
        params: list[Any] = [after] + ([] if resource_types is None else [resource_types])
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql.SQL(
                    "SELECT rid, content::text FROM resource WHERE rid > %s AND NOT deleted{}"
                    " ORDER BY rid LIMIT %s").format(type_filter), [*params, limit])
                return [(int(r[0]), str(r[1])) for r in await cur.fetchall()]

    async def write_batch(self, job_id: int, rows: list[tuple[int, dict[str, Any]]],
                          cursor: int, lease_seconds: float) -> bool:
        """Replace the index rows of a batch and advance the job, in one transaction.

        Returns False when the job was taken away (cancelled, or another worker's now).
        """
        with translated():
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "SELECT status FROM job WHERE id = %s FOR UPDATE", (job_id,))
                row = await cur.fetchone()
                if row is None or row[0] != "running":
                    return False
                async with conn.cursor() as c:
                    # Rows of resources that changed since they were read are rewritten by
                    # their own write anyway; replacing them here is harmless.
                    await c.executemany(
                        "SELECT fhir_write_index(r.rid, %s::jsonb, true) FROM resource r"
                        " WHERE r.rid = %s AND NOT r.deleted",
                        [(dump_index(index), rid) for rid, index in rows])
                await conn.execute(
                    "UPDATE job SET cursor = %s, processed = processed + %s, updated_at = now(),"
                    " lease_until = now() + make_interval(secs => %s) WHERE id = %s",
                    (cursor, len(rows), lease_seconds, job_id))
        return True

    async def finish(self, job_id: int, status: str, error: str | None = None) -> None:
        """End a running job; a finished reindex activates the parameters it was
        building. A job cancelled meanwhile stays cancelled."""
        with translated():
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "UPDATE job SET status = %s, error = %s, updated_at = now(),"
                    " lease_until = NULL WHERE id = %s AND status = 'running'",
                    (status, error, job_id))
                if status == "done" and cur.rowcount:
                    await conn.execute(
                        "UPDATE search_param_state SET status = 'active', updated_at = now()"
                        " WHERE job_id = %s", (job_id,))

    async def renew(self, job_id: int, processed: int, lease_seconds: float) -> bool:
        """Extend a running job's lease and set its progress."""
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "UPDATE job SET processed = %s, updated_at = now(),"
                    " lease_until = now() + make_interval(secs => %s)"
                    " WHERE id = %s AND status = 'running'",
                    (processed, lease_seconds, job_id))
                return cur.rowcount == 1

    async def record_output(self, job_id: int, position: dict[str, Any],
                            output: dict[str, Any] | None, after: dict[str, Any],
                            processed: int, lease_seconds: float) -> bool:
        """Append an output file and advance the position, compared and set at once: of
        two workers on one job (a lease that expired under a slow one) one wins."""
        outputs = [] if output is None else [output]
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "UPDATE job SET params = params || jsonb_build_object('position',"
                    " %s::jsonb, 'outputs', coalesce(params->'outputs', '[]') || %s::jsonb),"
                    " processed = %s, updated_at = now(),"
                    " lease_until = now() + make_interval(secs => %s)"
                    " WHERE id = %s AND status = 'running' AND params->'position' = %s::jsonb",
                    (Jsonb(after), Jsonb(outputs), processed, lease_seconds, job_id,
                     Jsonb(position)))
                return cur.rowcount == 1

    async def custom_parameters(self) -> list[tuple[dict[str, Any], str]]:
        """Stored SearchParameter resources with their build state ('building' if none)."""
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT r.content::text, coalesce(s.status, 'building') FROM resource r"
                    " LEFT JOIN search_param_state s ON s.url = r.content ->> 'url'"
                    " WHERE r.resource_type = 'SearchParameter' AND NOT r.deleted"
                    " AND r.content ->> 'status' = 'active' ORDER BY r.rid")
                return [(orjson.loads(r[0]), str(r[1])) for r in await cur.fetchall()]

    async def custom_version(self) -> tuple[Any, ...]:
        """Changes whenever stored SearchParameters or their build states change."""
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT (SELECT max(last_updated) FROM resource"
                    " WHERE resource_type = 'SearchParameter'),"
                    " (SELECT max(updated_at) FROM search_param_state)")
                row = await cur.fetchone()
                return tuple(row) if row else ()
