"""The storage-agnostic Repository protocol: one method per FHIR interaction.

Services and routers see storage only through this protocol (the PostgreSQL
implementation is ``fhir_server.storage.repository.PgRepository``), so that they never
know about SQL, connections or psycopg.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

WriteMethod = Literal["POST", "PUT", "PATCH", "DELETE"]
WriteOutcome = Literal["created", "updated", "unchanged", "deleted", "absent"]


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
    #: keyset cursor: continue after this (last_updated, hid) pair, newest first.
    after: tuple[datetime, int] | None = None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of history, newest first, with the cursor of the next page if any."""

    entries: list[StoredVersion]
    next_cursor: tuple[datetime, int] | None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Readiness:
    """What the readiness probe found."""

    database: bool
    migrations: str


class Repository(Protocol):
    """Persistence of FHIR resources, one method per interaction."""

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The current version (possibly a deletion tombstone), or None if never stored."""
        ...

    async def vread(self, resource_type: str, id: str, version_id: int) -> StoredVersion | None:
        """One version from history, or None."""
        ...

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None) -> WriteResult:
        """Create, update or delete one resource atomically.

        ``content`` is the resource's JSON text as received (already validated); the
        store sets its ``id`` and its ``meta.versionId``/``meta.lastUpdated``.

        Raises ``PreconditionFailed`` when ``if_match`` is stale and ``Conflict`` when a
        POST finds the id taken.
        """
        ...

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """A page of history entries, newest first."""
        ...

    async def readiness(self) -> Readiness:
        """Round trip to the database and compare applied migrations with the files."""
        ...
