"""PgSession: the interactions on one PostgreSQL connection (the Store protocol).

A session runs on a connection in autocommit or inside a transaction, and carries one
access scope (none: everything is visible), compiled into every statement that returns
resources. ``PgRepository`` (repository.py) hands sessions out over its pools.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from fhir_server.audit import hook
from fhir_server.errors import Forbidden
from fhir_server.search.hashing import h64
from fhir_server.search.registry import SearchParam
from fhir_server.search.request import SearchRequest
from fhir_server.service.access import READ_PERMISSIONS, AccessScope
from fhir_server.service.repository import (
    HistoryPage,
    HistoryQuery,
    SearchPage,
    SearchRow,
    StoredVersion,
    WriteMethod,
    WriteResult,
)
from fhir_server.storage import cursor
from fhir_server.storage.errors import translated
from fhir_server.storage.fetch import Fetched, rows_within
from fhir_server.storage.history import HISTORY_CONTENT, history_page
from fhir_server.storage.index_rows import dump_index
from fhir_server.storage.scope import admitted_statement, scoped_statement, visible
from fhir_server.storage.sql import statements
from fhir_server.storage.sql.common import Fragment
from fhir_server.storage.sql.compile import Compiler

READ = sql.SQL(
    "SELECT version_id, last_updated, deleted, content::text FROM resource"
    " WHERE resource_type = %s AND id = %s"
)
_VREAD = sql.SQL(
    "SELECT h.version_id, h.last_updated, h.method = 'DELETE', {}, h.method"
    " FROM resource_history h WHERE h.resource_type = %s AND h.id = %s AND h.version_id = %s"
).format(HISTORY_CONTENT)
#: where the stored JSON is in a row of ``statements.ROW``
_ROW_CONTENT = 5
_WRITE = sql.SQL(
    "SELECT rid, version_id, last_updated, outcome, content"
    " FROM fhir_write(%s, %s, %s::jsonb, %s, %s, %s::jsonb)"
)


def _row(row: tuple[Any, ...]) -> SearchRow:
    return SearchRow(row[0], StoredVersion(row[1], row[2], row[3], row[4], False, row[5]))



class PgSession:
    """The interactions on one connection (inside a transaction or autocommit)."""

    def __init__(self, conn: psycopg.AsyncConnection, search_timeout_ms: int = 0,
                 scope: AccessScope | None = None, hold_audit: bool = False) -> None:
        self._conn = conn
        #: a transaction of many writes: their audit events are staged at its end
        self._hold_audit = hold_audit
        self._search_timeout_ms = search_timeout_ms
        #: what reads, searches and history see; writes are checked against ``_writes``
        self._scope = None if scope is None else scope.view(READ_PERMISSIONS)
        self._writes = scope
        #: a write was made on this session (its caller then reads the primary a while)
        self.wrote = False

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The current version or deletion tombstone of a resource the scope admits."""
        statement, params = scoped_statement(READ, visible(self._scope, resource_type),
                                    (resource_type, id))
        with translated():
            cur = await self._conn.execute(sql.Composed([statement]), params)
            row = await cur.fetchone()
        if row is None:
            return None
        return StoredVersion(resource_type, id, row[0], row[1], row[2], row[3])

    async def vread(self, resource_type: str, id: str, version_id: int) -> StoredVersion | None:
        """One historical version of a resource whose current version the scope admits."""
        statement, params = scoped_statement(_VREAD, visible(self._scope, resource_type),
                                    (resource_type, id, version_id))
        with translated():
            cur = await self._conn.execute(sql.Composed([statement]), params)
            row = await cur.fetchone()
        if row is None:
            return None
        return StoredVersion(resource_type, id, row[0], row[1], row[2], row[3], row[4])

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None,
                    index: dict[str, list[dict[str, Any]]] | None = None) -> WriteResult:
        """Create, update or delete one resource and its index rows in one statement.

        With a scope that restricts the type, the version replaced and the version
        written must both be admitted for the method's permission (a savepoint, or a
        transaction of its own, undoes a refused write). The request's audit observer,
        if any, records the write's AuditEvent in the same transaction."""
        self.wrote = True
        admitted = admitted_statement(self._writes, resource_type, id, method)
        audit = hook.observer()
        if admitted is None and audit is None:
            return await self._write(resource_type, id, content, method, if_match, index)
        with translated():
            async with self._atomic():
                if admitted is not None and method != "POST" and not (
                        await self._admitted(admitted)):
                    raise Forbidden(f"{resource_type}/{id} is outside the scope of this "
                                    f"token for {method}")
                result = await self._write(resource_type, id, content, method, if_match,
                                           index)
                if admitted is not None and method != "DELETE" and (
                        result.version is not None) and not await self._admitted(admitted):
                    raise Forbidden(f"the {resource_type} sent would be outside the scope "
                                    f"of this token, so it was not stored")
                if audit is not None:
                    await audit.written(self._conn, resource_type, id, method, result,
                                        hold=self._hold_audit)
        return result

    def _atomic(self) -> AbstractAsyncContextManager[Any]:
        """A transaction when the session has none yet; inside one, nothing more.

        A refused write raises through the session's transaction, which then rolls
        back, so a savepoint would add nothing but its two round trips (SAVEPOINT and
        RELEASE): a fifth of the time of each write of a transaction Bundle."""
        if self._conn.info.transaction_status == TransactionStatus.IDLE:
            return self._conn.transaction()
        return nullcontext()

    async def _admitted(self, statement: Fragment) -> bool:
        """Whether the resource is absent, deleted or passes the condition."""
        cur = await self._conn.execute(sql.Composed([statement[0]]), statement[1])
        row = await cur.fetchone()
        return row is None or bool(row[0])

    async def _write(self, resource_type: str, id: str, content: str | None,
                     method: WriteMethod, if_match: int | None,
                     index: dict[str, list[dict[str, Any]]] | None) -> WriteResult:
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
        """A page of versions, newest first, within ``query.max_bytes`` of stored JSON."""
        return await history_page(self._conn, query, visible(self._scope))

    async def _fetch(self, statement: Fragment) -> list[tuple[Any, ...]]:
        """Run a search statement under the search time limit and with custom plans.

        psycopg prepares a statement after a few runs, and PostgreSQL's generic plan for
        a search ignores its values (how selective a hash or a date bound is): up to 30x
        slower in bench/search.py. Both settings are SET LOCAL in a transaction that is
        pipelined, so they cost no extra round trip; reads keep their cached plans.
        """
        query = sql.Composed([statement[0]])
        timeout = self._search_timeout
        with translated():
            async with self._conn.pipeline(), self._conn.transaction():
                await self._conn.execute(
                    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
                    " set_config('statement_timeout', coalesce(%s,"
                    " current_setting('statement_timeout')), true)", (timeout,))
                cur = await self._conn.execute(query, statement[1])
            return list(await cur.fetchall())

    @property
    def _search_timeout(self) -> str | None:
        return f"{self._search_timeout_ms}ms" if self._search_timeout_ms else None

    async def _fetch_within(self, statement: Fragment, limit: int,
                            max_bytes: int | None) -> Fetched:
        """``_fetch``, keeping the rows within ``max_bytes`` (all with None)."""
        if max_bytes is None:
            return Fetched(await self._fetch(statement), None)
        with translated():
            return await rows_within(self._conn, statement, limit, _ROW_CONTENT, max_bytes,
                                     self._search_timeout)

    async def search(self, request: SearchRequest, count: int,
                     max_bytes: int | None = None) -> SearchPage:
        """A page of matches, by keyset on the sort keys and rid, within ``max_bytes``."""
        query = Compiler(self._scope).compile(request)
        position: list[Any] | None = None
        backwards = False
        if request.cursor:
            position, backwards = cursor.decode(request.cursor,
                                                [k.sql_type for k in query.sort])
        width = len(query.sort)
        got = await self._fetch_within(statements.page(query, count + 1, position, backwards),
                                       count + 1, max_bytes)
        cut = got.left is not None
        # A row left out for its size is there for the next page, as one past ``count``.
        more = cut or len(got.rows) > count
        fetched = got.rows[:count]
        if backwards:
            fetched.reverse()
        rows = [_row(r) for r in fetched]
        if not fetched:
            return SearchPage(rows)
        first = cursor.encode([*fetched[0][6:6 + width], fetched[0][0]], True)
        last = cursor.encode([*fetched[-1][6:6 + width], fetched[-1][0]], False)
        if backwards:
            # Paging back: there is a later page (we came from it); an earlier one if more.
            return SearchPage(rows, last, first if more else None, cut)
        return SearchPage(rows, last if more else None,
                          first if position is not None else None, cut)

    async def count(self, request: SearchRequest) -> int:
        """The exact number of matches."""
        rows = await self._fetch(statements.total(Compiler(self._scope).compile(request)))
        return int(rows[0][0])

    async def estimate(self, request: SearchRequest) -> int:
        """The planner's estimate of the number of matches."""
        rows = await self._fetch(statements.estimate(Compiler(self._scope).compile(request)))
        plan = rows[0][0]
        plan = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
        return int(plan[0]["Plan"]["Plan Rows"])

    async def include(self, sources: Sequence[SearchRow], params: Sequence[SearchParam],
                      target_type: str | None, limit: int,
                      max_bytes: int | None = None) -> list[SearchRow]:
        """Resources the given ones refer to through ``params`` (within ``max_bytes``,
        and the first past it)."""
        if not sources or not params:
            return []
        got = await self._fetch_within(statements.include_forward(
            [s.rid for s in sources], [p.p for p in params], target_type, limit,
            visible(self._scope)), limit, max_bytes)
        return [_row(r) for r in got.rows + ([got.left] if got.left else [])]

    async def revinclude(self, targets: Sequence[SearchRow], params: Sequence[SearchParam],
                         limit: int, max_bytes: int | None = None) -> list[SearchRow]:
        """Resources referring to the given ones through ``params`` (within
        ``max_bytes``, and the first past it)."""
        if not targets or not params:
            return []
        got = await self._fetch_within(statements.include_reverse(
            [(t.version.resource_type, t.version.id) for t in targets],
            [p.p for p in params], limit, visible(self._scope)), limit, max_bytes)
        return [_row(r) for r in got.rows + ([got.left] if got.left else [])]

    async def lock(self, *key: str) -> None:
        """A transaction-scoped advisory lock on ``key`` (conditional interactions)."""
        with translated():
            await self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (h64(*key),))
