"""The storage-agnostic Repository protocol: one method per FHIR interaction.

Services and handlers see storage only through this protocol (the PostgreSQL
implementation is ``fhir_server.storage.repository.PgRepository``), in FHIR terms:
searches arrive parsed and typed (``SearchRequest``), paging positions leave as opaque
tokens, and a repository is bound to one caller's access scope (``scoped``), which it
applies to everything it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam
    from fhir_server.search.request import SearchRequest
    from fhir_server.service.access import AccessScope

WriteMethod = Literal["POST", "PUT", "PATCH", "DELETE"]
WriteOutcome = Literal["created", "updated", "unchanged", "deleted", "absent", "found"]


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a resource as stored; ``content`` is its JSON text (None if deleted)."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: str | None
    method: WriteMethod | None = None
    #: history only: this version created the resource again after its deletion
    recreated: bool = False


@dataclass(frozen=True, slots=True)
class SearchRow:
    """A current resource found by a search, with its row id (for includes and paging)."""

    rid: int
    version: StoredVersion


def content_bytes(content: str | None) -> int:
    """The size in bytes of a stored resource's JSON text (as UTF-8 on the wire)."""
    if content is None:
        return 0
    return len(content) if content.isascii() else len(content.encode())


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of matches, with the opaque positions of the next and previous pages.

    ``cut`` says the page holds fewer rows than asked because the next row's JSON would
    have passed the byte budget (the next cursor continues right after the last row)."""

    rows: list[SearchRow]
    next_cursor: str | None = None
    previous_cursor: str | None = None
    cut: bool = False


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write did, with the version it produced (or found, for no-ops)."""

    outcome: WriteOutcome
    version: StoredVersion | None


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Parameters of a history interaction at system, type or instance level."""

    resource_type: str | None = None
    id: str | None = None
    count: int = 20
    since: datetime | None = None
    #: ``_at``: versions current at some moment of ``[start, end)``.
    at: tuple[datetime, datetime] | None = None
    #: the opaque position of a next link: continue after it, newest first
    cursor: str | None = None
    #: most bytes of stored JSON the page holds (None: no limit); a page holds at least
    #: one version, however large
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of history, newest first, with the position of the next page if any
    (``cut``: fewer than ``count`` entries, as the next would have passed ``max_bytes``)."""

    entries: list[StoredVersion]
    next_cursor: str | None
    total: int | None = None
    cut: bool = False


@dataclass(frozen=True)
class Job:
    """One background job as stored."""

    id: int
    kind: str
    params: dict[str, Any]
    status: str
    cursor: int
    processed: int
    total: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class JobStart:
    """What starting a job found: a job queued now, or the active one of its scope."""

    job: Job
    created: bool
    #: of the custom parameters asked to be built, those the active (running) job
    #: does not build: it read the registry before they were stored
    unbuilt: tuple[str, ...] = ()


class JobStore(Protocol):
    """Background job rows and the resource scans that reindexing needs."""

    async def start(self, kind: str, scope: str, params: dict[str, Any],
                    resource_types: list[str] | None, building_urls: list[str]
                    ) -> JobStart:
        """Queue a job over ``resource_types`` (its total counted), unless one of the
        same kind and scope is queued or running: then that one. The custom parameters
        the job will complete are marked building (on an active job: if still queued)."""
        ...

    async def cancel(self, job_id: int, done_too: bool = False) -> Job | None:
        """Cancel a queued or running job (a done one too with ``done_too``); the job
        as it is then (None: unknown)."""
        ...

    async def get(self, job_id: int) -> Job | None:
        """One job, or None."""
        ...

    async def claim(self, kind: str, lease_seconds: float) -> Job | None:
        """Take the oldest queued job, or a running one whose lease expired."""
        ...

    async def batch(self, after: int, resource_types: list[str] | None,
                    limit: int) -> list[tuple[int, str]]:
        """The next current resources by rid after ``after``: (rid, content)."""
        ...

    async def write_batch(self, job_id: int, rows: list[tuple[int, dict[str, Any]]],
                          cursor: int, lease_seconds: float) -> bool:
        """Replace index rows of a batch and advance the job; False if it was taken away."""
        ...

    async def finish(self, job_id: int, status: str, error: str | None = None) -> None:
        """End a running job (a cancelled one stays cancelled)."""
        ...

    async def renew(self, job_id: int, processed: int, lease_seconds: float) -> bool:
        """Extend a running job's lease and set its progress; False if it is no longer
        running (cancelled)."""
        ...

    async def record_output(self, job_id: int, position: dict[str, Any],
                            output: dict[str, Any] | None, after: dict[str, Any],
                            processed: int, lease_seconds: float) -> bool:
        """Append an export's output file (when given) and move its position from
        ``position`` to ``after``, in one statement; False unless the job is running at
        ``position`` (cancelled, or another worker took it over and moved on)."""
        ...

    async def custom_parameters(self) -> list[tuple[dict[str, Any], str]]:
        """Stored active SearchParameter resources with their build state."""
        ...

    async def custom_version(self) -> tuple[Any, ...]:
        """A value that changes whenever stored SearchParameters or their states change."""
        ...


@dataclass(frozen=True, slots=True)
class Readiness:
    """What the readiness probe found (the primary's state decides readiness; a read
    replica's is reported, since reads fall back to the primary without it)."""

    database: bool
    migrations: str
    #: the read replica: ``connected``, ``lagging`` or ``disconnected`` (None: none set)
    replica: str | None = None
    #: how far the replica's replay is behind the primary, in seconds (None: unknown)
    replica_lag_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """One statement a search ran (``_explain``), with the database's plan of it.

    ``sql`` has ``$1``-style placeholders whose values are ``parameters`` (JSON text);
    ``plan`` is the plan with actual timings and buffers, as the database's JSON text."""

    purpose: str  # search, count, estimate, include, revinclude
    sql: str
    parameters: str
    plan: str
    planning_ms: float | None
    execution_ms: float | None


class Store(Protocol):
    """Persistence of FHIR resources, one method per interaction."""

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The current version (possibly a deletion tombstone), or None if never stored."""
        ...

    async def vread(self, resource_type: str, id: str, version_id: int) -> StoredVersion | None:
        """One version from history, or None."""
        ...

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None,
                    index: dict[str, list[dict[str, Any]]] | None = None) -> WriteResult:
        """Create, update or delete one resource and its search index rows atomically.

        ``content`` is the resource's JSON text as received (already validated); the
        store sets its ``id`` and its ``meta.versionId``/``meta.lastUpdated``. Raises
        ``PreconditionFailed`` when ``if_match`` is stale and ``Conflict`` when a POST
        finds the id taken.
        """
        ...

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """A page of history entries, newest first."""
        ...

    async def search(self, request: SearchRequest, count: int,
                     max_bytes: int | None = None) -> SearchPage:
        """A page of up to ``count`` matches, after ``request.cursor`` when it is set
        (BadRequest for a cursor that is not one of this search's), holding at most
        ``max_bytes`` of stored JSON but never less than one match (``SearchPage.cut``)."""
        ...

    async def count(self, request: SearchRequest) -> int:
        """The exact number of matches."""
        ...

    async def estimate(self, request: SearchRequest) -> int:
        """An estimate of the number of matches (the database planner's)."""
        ...

    async def include(self, sources: Sequence[SearchRow], params: Sequence[SearchParam],
                      target_type: str | None, limit: int,
                      max_bytes: int | None = None) -> list[SearchRow]:
        """Resources that ``sources`` refer to through the reference ``params``: at most
        ``limit``, and those within ``max_bytes`` of stored JSON plus the first one past
        it (so the caller can tell something was left out)."""
        ...

    async def revinclude(self, targets: Sequence[SearchRow], params: Sequence[SearchParam],
                         limit: int, max_bytes: int | None = None) -> list[SearchRow]:
        """Resources referring to ``targets`` through the reference ``params`` (``limit``
        and ``max_bytes`` as for ``include``)."""
        ...



class ExplainingStore(Store, Protocol):
    """A Store recording the plans of its searches' statements (``_explain``)."""

    plans: list[QueryPlan]


class Session(Store, Protocol):
    """The interactions inside one database transaction."""

    async def lock(self, *key: str) -> None:
        """Serialize conditional interactions on ``key`` until the transaction ends."""
        ...


class Repository(Store, Protocol):
    """The interactions on pooled connections, plus transactions, scopes and readiness."""

    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """A Session whose calls share one database transaction (inside a transaction
        already: that transaction's session)."""
        ...

    def scoped(self, scope: AccessScope) -> Repository:
        """The same storage seen through ``scope``: every read, search, chain, include,
        history entry and conditional look-up of it only finds what the scope admits."""
        ...

    def explaining(self) -> AbstractAsyncContextManager[ExplainingStore]:
        """A store (this repository's scope, and the database its searches would use)
        whose searches run in a READ ONLY transaction that is rolled back, each
        statement once more under ``EXPLAIN (ANALYZE, BUFFERS)``: its ``plans``."""
        ...

    async def readiness(self) -> Readiness:
        """Round trip to the database and compare applied migrations with the files."""
        ...
