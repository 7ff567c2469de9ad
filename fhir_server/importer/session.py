"""A write-behind Session: the service code of the API, with writes sent in batches.

The importer runs the API's own service functions (``bundle.transaction``,
``write.update``, ...) on a :class:`BufferedRepository`. Its sessions queue each
``write`` instead of sending it, and send the queue (``storage.bulk``) before anything
that could observe the database (a read, search, history, include or lock), when the
queue is long, and before the transaction commits: new resources in one set-based
statement, everything else one ``fhir_write`` call each (pipelined). What ends up
stored is therefore what the same calls make on the API's repository; only the
number of round trips and statements differs.

What a queued write cannot know yet is its outcome: ``write`` answers a provisional
result (used only for the response Bundle, which the importer discards), and the real
outcomes are recorded in the session's :class:`WriteLog` when the queue is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from psycopg_pool import AsyncConnectionPool

from fhir_server.importer.deferred import tables_of
from fhir_server.search.index import TableRows
from fhir_server.service.access import AccessScope
from fhir_server.service.delegating import Delegating, DelegatingSession
from fhir_server.service.repository import (
    ExplainingStore,
    Readiness,
    Repository,
    StoredVersion,
    WriteMethod,
    WriteOutcome,
    WriteResult,
)
from fhir_server.storage import bulk
from fhir_server.storage.errors import translated
from fhir_server.storage.session import PgSession

#: Queued writes sent at once at most (bounds memory for very large Bundles).
MAX_PENDING = 500
_PROVISIONAL: dict[str, WriteOutcome] = {"POST": "created", "PUT": "updated",
                                          "PATCH": "updated", "DELETE": "deleted"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class LoggedWrite:
    """One write of a session; ``outcome`` is filled in once it has been sent."""

    resource_type: str
    id: str
    method: str
    outcome: str | None = None


@dataclass
class WriteLog:
    """Every write of one unit of work, in order, with its real outcome."""

    writes: list[LoggedWrite] = field(default_factory=list)
    #: tables written to (``resource``, ``resource_history``, ``idx_*``), for ANALYZE
    tables: set[str] = field(default_factory=set)

    def clear(self) -> None:
        """Forget the writes (after their transaction was rolled back)."""
        self.writes.clear()


@dataclass
class _Pending:
    call: bulk.WriteCall
    index: dict[str, list[dict[str, Any]]] | None
    logged: LoggedWrite


class BufferedSession(DelegatingSession[PgSession]):
    """The Session protocol over one connection in a transaction, writes deferred.

    Every other call (read, search, history, include, lock) sends the queue first.
    """

    def __init__(self, inner: PgSession, conn: Any, log: WriteLog) -> None:
        super().__init__(inner)
        self._conn = conn
        self._log = log
        self._pending: list[_Pending] = []
        #: set when sending failed: the transaction is aborted and must be given up
        self.broken = False

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None,
                    index: dict[str, list[dict[str, Any]]] | None = None) -> WriteResult:
        """Queue one write; the answer is provisional (version 0, outcome by method)."""
        logged = LoggedWrite(resource_type, id, method)
        self._log.writes.append(logged)
        self._pending.append(_Pending(bulk.WriteCall(resource_type, id, content, method,
                                                     if_match), index, logged))
        if len(self._pending) >= MAX_PENDING:
            await self.flush()
        version = StoredVersion(resource_type, id, 0, _EPOCH, method == "DELETE", None, method)
        return WriteResult(_PROVISIONAL[method], version)

    async def flush(self) -> None:
        """Send the queued writes, then COPY the index rows of the versions they made."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self.broken = True  # until the whole batch has gone through
        with translated():
            answers = await _send(self._conn, [p.call for p in pending])
            # The index rows a resource ends with: those of its last write that made a
            # version (an unchanged write keeps the rows of the version before it).
            rows: dict[int, TableRows] = {}
            for item, answer in zip(pending, answers, strict=True):
                item.logged.outcome = answer.outcome
                if answer.rid is None:
                    continue
                if answer.outcome in ("created", "updated"):
                    rows[answer.rid] = tables_of(item.index)
                elif answer.outcome == "deleted":
                    rows.pop(answer.rid, None)
                if answer.outcome in ("created", "updated", "deleted"):
                    self._log.tables.update(("resource", "resource_history"))
            self._log.tables.update(f"idx_{table}" for index in rows.values()
                                    for table, (_, values) in index.items() if values)
            await bulk.copy_index(self._conn, rows.items())
        self.broken = False

    async def _before_observing(self) -> None:
        """Send the queued writes, so that what is observed includes them."""
        await self.flush()


async def _send(conn: Any, calls: list[bulk.WriteCall]) -> list[bulk.WriteRow]:
    """Each call's answer: new resources created set-based, the rest by ``fhir_write``.

    A key written more than once in the batch goes to ``fhir_write`` each time, in
    order; other keys are independent of each other (a write touches only its own
    resource's rows), so sending the creates first stores what the calls in order
    would."""
    seen: dict[tuple[str, str], int] = {}
    for call in calls:
        key = (call.resource_type, call.id)
        seen[key] = seen.get(key, 0) + 1
    once = [k for k, c in enumerate(calls) if seen[(c.resource_type, c.id)] == 1]
    created = await bulk.create_many(conn, [calls[k] for k in once])
    answers: list[bulk.WriteRow | None] = [None] * len(calls)
    for position, row in created.items():
        answers[once[position]] = row
    rest = [k for k, answer in enumerate(answers) if answer is None]
    for k, row in zip(rest, await bulk.write_many(conn, [calls[k] for k in rest]),
                      strict=True):
        answers[k] = row
    done = [answer for answer in answers if answer is not None]
    assert len(done) == len(calls)  # write_many answers every call it is given
    return done


class BufferedRepository(Delegating[Repository]):
    """The Repository protocol whose transactions are :class:`BufferedSession` s.

    Calls outside a transaction go to the API's repository unchanged (delegated).
    ``log`` collects the writes of every transaction; the importer gives each unit of
    work its own repository object (they are cheap) so that logs do not mix.
    """

    def __init__(self, pool: AsyncConnectionPool, inner: Repository,
                 search_timeout_ms: int, log: WriteLog | None = None) -> None:
        super().__init__(inner)
        self._pool = pool
        self._search_timeout_ms = search_timeout_ms
        self.log = log if log is not None else WriteLog()

    def with_log(self, log: WriteLog) -> BufferedRepository:
        """The same repository writing into another log."""
        return BufferedRepository(self._pool, self._inner, self._search_timeout_ms, log)

    def scoped(self, scope: AccessScope) -> Repository:
        """Not used: the importer writes as the system, seeing everything."""
        raise TypeError("the importer's repository takes no access scope")

    def explaining(self) -> AbstractAsyncContextManager[ExplainingStore]:
        """Not used: the importer runs no searches to explain."""
        raise TypeError("the importer's repository explains no searches")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[BufferedSession]:
        """A buffered session in one transaction; queued writes are sent before COMMIT."""
        mark = len(self.log.writes)
        try:
            with translated():
                async with self._pool.connection() as conn, conn.transaction():
                    session = BufferedSession(PgSession(conn, self._search_timeout_ms), conn,
                                              self.log)
                    yield session
                    await session.flush()
        except BaseException:
            del self.log.writes[mark:]  # rolled back: these writes did not happen
            raise

    async def readiness(self) -> Readiness:
        """The API repository's readiness."""
        return await self._inner.readiness()

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None,
                    index: dict[str, list[dict[str, Any]]] | None = None) -> WriteResult:
        """One write in its own transaction (sent at once, outcome logged)."""
        async with self.transaction() as session:
            await session.write(resource_type, id, content, method, if_match, index)
        outcome = self.log.writes[-1].outcome
        version = await self._inner.read(resource_type, id)
        return WriteResult(outcome or "absent", version)  # type: ignore[arg-type]


if TYPE_CHECKING:
    def _is_repository(repo: BufferedRepository) -> Repository:
        """mypy checks here that BufferedRepository satisfies the protocol."""
        return repo
