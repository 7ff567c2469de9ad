"""Background jobs in PostgreSQL: claimed with SKIP LOCKED, leased, resumable by cursor."""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from fhir_server.service.repository import Job
from fhir_server.storage.errors import translated
from fhir_server.storage.repository import dump_index

_COLUMNS = sql.SQL("id, kind, params, status, cursor, processed, total, error, created_at,"
                   " updated_at")


def _job(row: tuple[Any, ...] | None) -> Job | None:
    return None if row is None else Job(*row)


class PgJobs:
    """Job rows and the resource scans that reindexing needs."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def create(self, kind: str, params: dict[str, Any], total: int,
                     building_urls: list[str]) -> Job:
        """Queue a job; the custom parameters it will complete are marked building."""
        with translated():
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(sql.SQL(
                    "INSERT INTO job (kind, params, total) VALUES (%s, %s, %s) RETURNING {}"
                ).format(_COLUMNS), (kind, Jsonb(params), total))
                job = _job(await cur.fetchone())
                assert job is not None
                for url in building_urls:
                    await conn.execute(
                        "INSERT INTO search_param_state (url, status, job_id) VALUES"
                        " (%s, 'building', %s) ON CONFLICT (url) DO UPDATE SET"
                        " status = 'building', job_id = excluded.job_id, updated_at = now()",
                        (url, job.id))
        return job

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

    async def count(self, resource_types: list[str] | None) -> int:
        """Current resources of the given types (all when None)."""
        with translated():
            async with self._pool.connection() as conn:
                if resource_types is None:
                    cur = await conn.execute("SELECT count(*) FROM resource WHERE NOT deleted")
                else:
                    cur = await conn.execute(
                        "SELECT count(*) FROM resource WHERE NOT deleted"
                        " AND resource_type = ANY(%s)", (resource_types,))
                row = await cur.fetchone()
                return int(row[0]) if row else 0

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
        """End a job; a finished reindex activates the parameters it was building."""
        with translated():
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "UPDATE job SET status = %s, error = %s, updated_at = now(),"
                    " lease_until = NULL WHERE id = %s", (status, error, job_id))
                if status == "done":
                    await conn.execute(
                        "UPDATE search_param_state SET status = 'active', updated_at = now()"
                        " WHERE job_id = %s", (job_id,))

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
