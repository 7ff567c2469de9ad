"""PgRepository: the Repository protocol on PostgreSQL (tables from migrations/).

Every interaction runs on a :class:`PgSession` (session.py), one connection; the
repository borrows a pooled connection per call (autocommit: each write is one
statement), and ``transaction()`` hands out a session whose calls share one database
transaction. A repository and its sessions carry one access scope (none: everything is
visible), compiled into every statement that returns resources.

With a read replica (replica.py) the reads of a request outside a transaction (by id,
vread, history, searches, counts, includes) are run there when it may serve them, and
again on the primary when it fails; writes and transactions always use the primary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from fhir_server.audit import hook
from fhir_server.errors import Conflict, FhirError
from fhir_server.search.registry import SearchParam
from fhir_server.search.request import SearchRequest
from fhir_server.service.access import AccessScope
from fhir_server.service.repository import (
    HistoryPage,
    HistoryQuery,
    Readiness,
    SearchPage,
    SearchRow,
    StoredVersion,
    WriteMethod,
    WriteResult,
)
from fhir_server.storage import migrate, migration_files
from fhir_server.storage.admin import AHEAD_COMPATIBLE
from fhir_server.storage.errors import CREATED_CONCURRENTLY, translated
from fhir_server.storage.explain import ExplainingSession, explaining
from fhir_server.storage.pool import FhirPool
from fhir_server.storage.replica import Replica, failed_on_replica
from fhir_server.storage.session import READ, PgSession

__all__ = ["PgRepository", "PgSession"]

T = TypeVar("T")


class PgRepository:
    """Resource storage in PostgreSQL through one async connection pool (and, for
    reads, the pool of a read replica)."""

    def __init__(self, pool: FhirPool, migrations_dir: Path,
                 search_timeout_ms: int = 0, scope: AccessScope | None = None,
                 migration_set: Any = None, replica: Replica | None = None) -> None:
        self._pool = pool
        self._migrations_dir = migrations_dir
        self._search_timeout_ms = search_timeout_ms
        self._scope = scope
        self._migration_files = (migration_set if migration_set is not None
                                 else migration_files.discover(migrations_dir))
        self._replica = replica

    def scoped(self, scope: AccessScope) -> PgRepository:
        """The same pools, seen through ``scope``."""
        return PgRepository(self._pool, self._migrations_dir, self._search_timeout_ms,
                            scope, self._migration_files, self._replica)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgSession]:
        """A session whose calls run in one transaction (on the primary), committed at
        the end."""
        with translated():
            async with self._pool.checkout() as conn, conn.transaction():
                session = PgSession(conn, self._search_timeout_ms, self._scope,
                                    hold_audit=True)
                yield session
                audit = hook.observer()
                if audit is not None:  # the writes' events, in the same transaction
                    await audit.flush(conn)
        if session.wrote and self._replica is not None:
            await self._replica.wrote()

    @asynccontextmanager
    async def explaining(self) -> AsyncIterator[ExplainingSession]:
        """A session explaining its searches (explain.py), on the database a search of
        this request would use, in a READ ONLY transaction that is rolled back."""
        pool = await self._replica.choose() if self._replica is not None else None
        async with explaining(pool or self._pool, self._search_timeout_ms,
                              self._scope) as session:
            yield session

    @asynccontextmanager
    async def _session(self, search: bool = False,
                       pool: FhirPool | None = None) -> AsyncIterator[PgSession]:
        """A session on its own connection; ``search``: one of the connections searches,
        histories and operations share (``DB_RESERVED_CONNECTIONS`` are kept from them)."""
        with translated():
            async with (pool or self._pool).checkout(search) as conn:
                yield PgSession(conn, self._search_timeout_ms, self._scope)

    async def _reading(self, search: bool, op: Callable[[PgSession], Awaitable[T]]) -> T:
        """``op`` on a session of the replica when this read may use it (again on the
        primary when it fails there), else of the primary."""
        if self._replica is not None and (pool := await self._replica.choose()):
            try:
                async with self._session(search, pool) as s:
                    return await op(s)
            except FhirError as exc:
                if not failed_on_replica(exc):
                    raise
                self._replica.failed(exc)
        async with self._session(search) as s:
            return await op(s)

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The current version or deletion tombstone of a resource.

        The hottest path of the server: without a scope or replica one pooled connection
        and one statement, no session object in between.
        """
        if self._replica is not None or (
                self._scope is not None and self._scope.restricts(resource_type)):
            return await self._reading(False, lambda s: s.read(resource_type, id))
        with translated():
            async with self._pool.checkout() as conn:
                cur = await conn.execute(READ, (resource_type, id))
                row = await cur.fetchone()
        if row is None:
            return None
        return StoredVersion(resource_type, id, row[0], row[1], row[2], row[3])

    async def vread(self, resource_type: str, id: str, version_id: int) -> StoredVersion | None:
        """One historical version of a resource."""
        return await self._reading(False, lambda s: s.vread(resource_type, id, version_id))

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None,
                    index: dict[str, list[dict[str, Any]]] | None = None) -> WriteResult:
        """Create, update or delete one resource (one statement, so one transaction).

        Two updates-as-create of one new id race on its insert; the loser is run again,
        now as an update of the winner's version (a plain PUT never answers 409)."""
        for attempt in (1, 2):
            try:
                async with self._session() as s:
                    result = await s.write(resource_type, id, content, method, if_match,
                                           index)
                if self._replica is not None:
                    await self._replica.wrote()
                return result
            except Conflict as exc:
                if attempt == 2 or method not in ("PUT", "PATCH") or (
                        CREATED_CONCURRENTLY not in exc.diagnostics):
                    raise
        raise AssertionError("unreachable")

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """A page of history entries, newest first."""
        return await self._reading(True, lambda s: s.history(query))

    async def search(self, request: SearchRequest, count: int,
                     max_bytes: int | None = None) -> SearchPage:
        """A page of matches."""
        return await self._reading(True, lambda s: s.search(request, count, max_bytes))

    async def count(self, request: SearchRequest) -> int:
        """The exact number of matches."""
        return await self._reading(True, lambda s: s.count(request))

    async def estimate(self, request: SearchRequest) -> int:
        """The planner's estimate of the number of matches."""
        return await self._reading(True, lambda s: s.estimate(request))

    async def include(self, sources: Sequence[SearchRow], params: Sequence[SearchParam],
                      target_type: str | None, limit: int,
                      max_bytes: int | None = None) -> list[SearchRow]:
        """Resources the given ones refer to."""
        return await self._reading(True, lambda s: s.include(
            sources, params, target_type, limit, max_bytes))

    async def revinclude(self, targets: Sequence[SearchRow], params: Sequence[SearchParam],
                         limit: int, max_bytes: int | None = None) -> list[SearchRow]:
        """Resources referring to the given ones."""
        return await self._reading(True, lambda s: s.revinclude(
            targets, params, limit, max_bytes))

    async def readiness(self) -> Readiness:
        """A round trip, then the applied migrations compared with the shipped files;
        the replica's state and lag as last probed."""
        replica = self._replica
        state = None if replica is None else replica.state
        lag = None if replica is None or state == "disconnected" else replica.lag
        try:
            async with self._pool.connection(timeout=2.0) as conn:
                applied = await migrate.read_applied(conn)
                summary = migration_files.status_summary(applied, self._migration_files)
                if summary == "ahead" and migration_files.compatible(
                        await migrate.read_compatibility_async(conn), self._migration_files):
                    summary = AHEAD_COMPATIBLE
        except Exception:  # any failure here means "not ready", never a 500
            return Readiness(False, "unknown", state, lag)
        return Readiness(True, summary, state, lag)
