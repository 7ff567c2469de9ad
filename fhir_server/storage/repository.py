"""PgRepository: the Repository protocol on PostgreSQL (tables from migrations/V1)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from fhir_server.service.repository import (
    HistoryPage,
    HistoryQuery,
    Readiness,
    StoredVersion,
    WriteMethod,
    WriteResult,
)
from fhir_server.storage import migrate
from fhir_server.storage.errors import translated

_READ = sql.SQL(
    "SELECT version_id, last_updated, deleted, content::text FROM resource"
    " WHERE resource_type = %s AND id = %s"
)
_VREAD = sql.SQL(
    "SELECT version_id, last_updated, method = 'DELETE', content::text, method"
    " FROM resource_history WHERE resource_type = %s AND id = %s AND version_id = %s"
)
_WRITE = sql.SQL(
    "SELECT rid, version_id, last_updated, outcome, content"
    " FROM fhir_write(%s, %s, %s::jsonb, %s, %s)"
)


class PgRepository:
    """Resource storage in PostgreSQL through one async connection pool."""

    def __init__(self, pool: AsyncConnectionPool, migrations_dir: Path) -> None:
        self._pool = pool
        self._migration_files = migrate.discover(migrations_dir)

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The current version or deletion tombstone of a resource."""
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(_READ, (resource_type, id))
                row = await cur.fetchone()
        if row is None:
            return None
        return StoredVersion(resource_type, id, row[0], row[1], row[2], row[3])

    async def vread(self, resource_type: str, id: str, version_id: int) -> StoredVersion | None:
        """One historical version of a resource."""
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(_VREAD, (resource_type, id, version_id))
                row = await cur.fetchone()
        if row is None:
            return None
        return StoredVersion(resource_type, id, row[0], row[1], row[2], row[3], row[4])

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None) -> WriteResult:
        """Create, update or delete one resource in one statement (one transaction)."""
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(_WRITE, (resource_type, id, content, method, if_match))
                row = await cur.fetchone()
        assert row is not None  # fhir_write always returns one row
        rid, version_id, last_updated, outcome, text = row
        if rid is None:
            return WriteResult("absent", None)
        version = StoredVersion(resource_type, id, version_id, last_updated,
                                outcome in ("deleted", "absent"), text)
        return WriteResult(outcome, version)

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """A page of versions, newest first, by keyset on (last_updated, hid)."""
        conditions: list[sql.Composable] = []
        params: list[Any] = []
        if query.resource_type is not None:
            conditions.append(sql.SQL("h.resource_type = %s"))
            params.append(query.resource_type)
        if query.id is not None:
            conditions.append(sql.SQL("h.id = %s"))
            params.append(query.id)
        if query.since is not None:
            conditions.append(sql.SQL("h.last_updated >= %s"))
            params.append(query.since)
        if query.at is not None:
            start, end = query.at
            # Versions current at some moment of [start, end): begun before the end and
            # not superseded before the start.
            conditions.append(sql.SQL(
                "h.last_updated < %s AND NOT EXISTS (SELECT 1 FROM resource_history n"
                " WHERE n.resource_type = h.resource_type AND n.id = h.id"
                " AND n.version_id = h.version_id + 1 AND n.last_updated <= %s)"
            ))
            params += [end, start]
        if query.after is not None:
            conditions.append(sql.SQL("(h.last_updated, h.hid) < (%s, %s)"))
            params += list(query.after)
        where = sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true")
        stmt = sql.SQL(
            "SELECT h.resource_type, h.id, h.version_id, h.last_updated, h.method,"
            " h.content::text, h.hid FROM resource_history h WHERE {}"
            " ORDER BY h.last_updated DESC, h.hid DESC LIMIT %s"
        ).format(where)
        total: int | None = None
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(stmt, [*params, query.count + 1])
                rows = await cur.fetchall()
                if query.id is not None and query.after is None:
                    # Instance history is small and bounded: its total is cheap and useful.
                    count_stmt = sql.SQL(
                        "SELECT count(*) FROM resource_history h WHERE {}").format(where)
                    cur = await conn.execute(count_stmt, params)
                    count_row = await cur.fetchone()
                    total = int(count_row[0]) if count_row else 0
        next_cursor: tuple[datetime, int] | None = None
        if len(rows) > query.count:
            rows = rows[: query.count]
            next_cursor = (rows[-1][3], rows[-1][6])
        entries = [
            StoredVersion(r[0], r[1], r[2], r[3], r[4] == "DELETE", r[5], r[4]) for r in rows
        ]
        return HistoryPage(entries, next_cursor, total)

    async def readiness(self) -> Readiness:
        """A round trip, then the applied migrations compared with the shipped files."""
        try:
            async with self._pool.connection(timeout=2.0) as conn:
                applied = await migrate.read_applied(conn)
        except Exception:  # any failure here means "not ready", never a 500
            return Readiness(database=False, migrations="unknown")
        return Readiness(True, migrate.status_summary(applied, self._migration_files))
