"""PgRepository: the Repository protocol on PostgreSQL (tables from migrations/).

Every method runs on a :class:`PgSession`, one connection; the repository's own methods
borrow a pooled connection per call (autocommit: each write is one statement), and
``transaction()`` hands out a session whose calls share one database transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from fhir_server.search import statements
from fhir_server.search.base import Fragment
from fhir_server.search.compile import Query
from fhir_server.search.hashing import h64
from fhir_server.service.repository import (
    HistoryPage,
    HistoryQuery,
    Readiness,
    SearchRow,
    StoredVersion,
    WriteMethod,
    WriteResult,
)
from fhir_server.storage import migrate, migration_files
from fhir_server.storage.admin import AHEAD_COMPATIBLE
from fhir_server.storage.errors import translated
from fhir_server.storage.history import history_statement

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
    " FROM fhir_write(%s, %s, %s::jsonb, %s, %s, %s::jsonb)"
)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dump_index(index: dict[str, list[dict[str, Any]]] | None) -> str | None:
    """Index rows as the JSON ``fhir_write_index`` reads (numerics kept exact)."""
    if not index:
        return None
    return orjson.dumps(index, default=_json_default).decode()


def _row(row: tuple[Any, ...]) -> SearchRow:
    return SearchRow(row[0], StoredVersion(row[1], row[2], row[3], row[4], False, row[5]))


class PgSession:
    """The interactions on one connection (inside a transaction or autocommit)."""

    def __init__(self, conn: psycopg.AsyncConnection, search_timeout_ms: int = 0) -> None:
        self._conn = conn
        self._search_timeout_ms = search_timeout_ms

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The current version or deletion tombstone of a resource."""
        with translated():
            cur = await self._conn.execute(_READ, (resource_type, id))
            row = await cur.fetchone()
        if row is None:
            return None
        return StoredVersion(resource_type, id, row[0], row[1], row[2], row[3])

    async def vread(self, resource_type: str, id: str, version_id: int) -> StoredVersion | None:
        """One historical version of a resource."""
        with translated():
            cur = await self._conn.execute(_VREAD, (resource_type, id, version_id))
            row = await cur.fetchone()
        if row is None:
            return None
        return StoredVersion(resource_type, id, row[0], row[1], row[2], row[3], row[4])

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None,
                    index: dict[str, list[dict[str, Any]]] | None = None) -> WriteResult:
        """Create, update or delete one resource and its index rows in one statement."""
        with translated():
            cur = await self._conn.execute(
                _WRITE, (resource_type, id, content, method, if_match, dump_index(index)))
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
        stmt, params, count_stmt = history_statement(query)
        total: int | None = None
        with translated():
            cur = await self._conn.execute(sql.Composed([stmt]), [*params, query.count + 1])
            rows = await cur.fetchall()
            if count_stmt is not None:
                # Counting happens only on the first page, whose params have no cursor.
                cur = await self._conn.execute(sql.Composed([count_stmt]), params)
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

    async def _fetch(self, statement: Fragment) -> list[tuple[Any, ...]]:
        """Run a search statement under the search time limit and with custom plans.

        psycopg prepares a statement after a few runs, and PostgreSQL's generic plan for
        a search ignores its values (how selective a hash or a date bound is): up to 30x
        slower in bench/search.py. Both settings are SET LOCAL in a transaction that is
        pipelined, so they cost no extra round trip; reads keep their cached plans.
        """
        query = sql.Composed([statement[0]])
        timeout = f"{self._search_timeout_ms}ms" if self._search_timeout_ms else None
        with translated():
            async with self._conn.pipeline(), self._conn.transaction():
                await self._conn.execute(
                    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
                    " set_config('statement_timeout', coalesce(%s,"
                    " current_setting('statement_timeout')), true)", (timeout,))
                cur = await self._conn.execute(query, statement[1])
            return list(await cur.fetchall())

    async def search_page(self, query: Query, limit: int, cursor: list[Any] | None,
                          backwards: bool) -> list[tuple[SearchRow, list[Any]]]:
        """Matches of a compiled query with the sort values of each row."""
        width = len(query.sort)
        rows = await self._fetch(statements.page(query, limit, cursor, backwards))
        return [(_row(r), list(r[6:6 + width])) for r in rows]

    async def search_total(self, query: Query) -> int:
        """The exact number of matches."""
        rows = await self._fetch(statements.total(query))
        return int(rows[0][0])

    async def search_estimate(self, query: Query) -> int:
        """The planner's estimate of the number of matches."""
        rows = await self._fetch(statements.estimate(query))
        plan = rows[0][0]
        plan = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
        return int(plan[0]["Plan"]["Plan Rows"])

    async def include(self, rids: list[int], p_values: list[int], target_type: str | None,
                      limit: int) -> list[SearchRow]:
        """Resources the given ones refer to through the parameters ``p_values``."""
        if not rids or not p_values:
            return []
        rows = await self._fetch(statements.include_forward(rids, p_values, target_type, limit))
        return [_row(r) for r in rows]

    async def revinclude(self, targets: list[tuple[str, str]], p_values: list[int],
                         limit: int) -> list[SearchRow]:
        """Resources referring to the given (type, id) through ``p_values``."""
        if not targets or not p_values:
            return []
        rows = await self._fetch(statements.include_reverse(targets, p_values, limit))
        return [_row(r) for r in rows]

    async def lock(self, *key: str) -> None:
        """A transaction-scoped advisory lock on ``key`` (conditional interactions)."""
        with translated():
            await self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (h64(*key),))


class PgRepository(PgSession):
    """Resource storage in PostgreSQL through one async connection pool."""

    def __init__(self, pool: AsyncConnectionPool, migrations_dir: Path,
                 search_timeout_ms: int = 0) -> None:
        self._pool = pool
        self._search_timeout_ms = search_timeout_ms
        self._migration_files = migration_files.discover(migrations_dir)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgSession]:
        """A session whose calls run in one transaction, committed at the end."""
        with translated():
            async with self._pool.connection() as conn, conn.transaction():
                yield PgSession(conn, self._search_timeout_ms)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[PgSession]:
        with translated():
            async with self._pool.connection() as conn:
                yield PgSession(conn, self._search_timeout_ms)

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The current version or deletion tombstone of a resource.

        The hottest path of the server: one pooled connection, one statement, no session
        object in between.
        """
        with translated():
            async with self._pool.connection() as conn:
                cur = await conn.execute(_READ, (resource_type, id))
                row = await cur.fetchone()
        if row is None:
            return None
        return StoredVersion(resource_type, id, row[0], row[1], row[2], row[3])

    async def vread(self, resource_type: str, id: str, version_id: int) -> StoredVersion | None:
        """One historical version of a resource."""
        async with self._session() as s:
            return await s.vread(resource_type, id, version_id)

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None,
                    index: dict[str, list[dict[str, Any]]] | None = None) -> WriteResult:
        """Create, update or delete one resource (one statement, so one transaction)."""
        async with self._session() as s:
            return await s.write(resource_type, id, content, method, if_match, index)

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """A page of history entries, newest first."""
        async with self._session() as s:
            return await s.history(query)

    async def search_page(self, query: Query, limit: int, cursor: list[Any] | None,
                          backwards: bool) -> list[tuple[SearchRow, list[Any]]]:
        """Matches of a compiled query with their sort values."""
        async with self._session() as s:
            return await s.search_page(query, limit, cursor, backwards)

    async def search_total(self, query: Query) -> int:
        """The exact number of matches."""
        async with self._session() as s:
            return await s.search_total(query)

    async def search_estimate(self, query: Query) -> int:
        """The planner's estimate of the number of matches."""
        async with self._session() as s:
            return await s.search_estimate(query)

    async def include(self, rids: list[int], p_values: list[int], target_type: str | None,
                      limit: int) -> list[SearchRow]:
        """Resources the given ones refer to."""
        async with self._session() as s:
            return await s.include(rids, p_values, target_type, limit)

    async def revinclude(self, targets: list[tuple[str, str]], p_values: list[int],
                         limit: int) -> list[SearchRow]:
        """Resources referring to the given ones."""
        async with self._session() as s:
            return await s.revinclude(targets, p_values, limit)

    async def readiness(self) -> Readiness:
        """A round trip, then the applied migrations compared with the shipped files."""
        try:
            async with self._pool.connection(timeout=2.0) as conn:
                applied = await migrate.read_applied(conn)
                summary = migration_files.status_summary(applied, self._migration_files)
                if summary == "ahead" and migration_files.compatible(
                        await migrate.read_compatibility_async(conn), self._migration_files):
                    summary = AHEAD_COMPATIBLE
        except Exception:  # any failure here means "not ready", never a 500
            return Readiness(database=False, migrations="unknown")
        return Readiness(True, summary)
