"""Delegating stores: a Store (or Session) that forwards every call to an inner one.

Wrappers of the Repository protocol (the Redis read cache, the importer's write-behind
sessions, a transaction's session seen as a repository) change only a few
interactions; they subclass these and override those, and the rest (history, searches,
includes, locks) reach the inner store unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fhir_server.errors import BadRequest
from fhir_server.service.repository import (
    ExplainingStore,
    HistoryPage,
    HistoryQuery,
    Readiness,
    Repository,
    SearchPage,
    SearchRow,
    Session,
    Store,
    StoredVersion,
    WriteMethod,
    WriteResult,
)

if TYPE_CHECKING:
    from fhir_server.search.registry import SearchParam
    from fhir_server.search.request import SearchRequest
    from fhir_server.service.access import AccessScope

InnerT = TypeVar("InnerT", bound=Store)
SessionT = TypeVar("SessionT", bound=Session)


class Delegating(Generic[InnerT]):
    """The Store protocol over ``inner``; every call is forwarded as it is.

    :meth:`_before_observing` is awaited before each call except ``write``, for
    subclasses that must bring the inner store up to date before it is looked at.
    """

    def __init__(self, inner: InnerT) -> None:
        """Forward to ``inner``."""
        self._inner = inner

    async def _before_observing(self) -> None:
        """Run before every call that could observe storage; nothing to do here."""

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The current version, from ``inner``."""
        await self._before_observing()
        return await self._inner.read(resource_type, id)

    async def vread(self, resource_type: str, id: str, version_id: int) -> StoredVersion | None:
        """One version from history, from ``inner``."""
        await self._before_observing()
        return await self._inner.vread(resource_type, id, version_id)

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None,
                    index: dict[str, list[dict[str, Any]]] | None = None) -> WriteResult:
        """One write, through ``inner``."""
        return await self._inner.write(resource_type, id, content, method, if_match, index)

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """A page of history, from ``inner`` (never cached or buffered)."""
        await self._before_observing()
        return await self._inner.history(query)

    async def search(self, request: SearchRequest, count: int,
                     max_bytes: int | None = None) -> SearchPage:
        """A page of matches, from ``inner``."""
        await self._before_observing()
        return await self._inner.search(request, count, max_bytes)

    async def count(self, request: SearchRequest) -> int:
        """The number of matches, from ``inner``."""
        await self._before_observing()
        return await self._inner.count(request)

    async def estimate(self, request: SearchRequest) -> int:
        """The estimated number of matches, from ``inner``."""
        await self._before_observing()
        return await self._inner.estimate(request)

    async def include(self, sources: Sequence[SearchRow], params: Sequence[SearchParam],
                      target_type: str | None, limit: int,
                      max_bytes: int | None = None) -> list[SearchRow]:
        """``_include`` targets, from ``inner``."""
        await self._before_observing()
        return await self._inner.include(sources, params, target_type, limit, max_bytes)

    async def revinclude(self, targets: Sequence[SearchRow], params: Sequence[SearchParam],
                         limit: int, max_bytes: int | None = None) -> list[SearchRow]:
        """``_revinclude`` sources, from ``inner``."""
        await self._before_observing()
        return await self._inner.revinclude(targets, params, limit, max_bytes)


class DelegatingSession(Delegating[SessionT]):
    """The Session protocol over ``inner``: the Store calls and the lock."""

    async def lock(self, *key: str) -> None:
        """The advisory lock of a conditional interaction, taken by ``inner``."""
        await self._before_observing()
        await self._inner.lock(*key)


class SessionRepository(DelegatingSession[Session]):
    """A transaction's session seen as a repository, for the interactions of a
    transaction Bundle: what they open as a transaction is that same transaction."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """The session itself: its transaction is already open."""
        yield self._inner

    def scoped(self, scope: AccessScope) -> Repository:
        """Not needed: the session was opened by an already scoped repository."""
        raise TypeError("a transaction's session carries its repository's scope already")

    def explaining(self) -> AbstractAsyncContextManager[ExplainingStore]:
        """Refused: a Bundle's entries run in transactions, which ``_explain`` is not."""
        raise BadRequest("_explain is not available in a batch or transaction entry: "
                         "send the search on its own")

    async def readiness(self) -> Readiness:
        """The session's database answers: it is in a transaction on it."""
        return Readiness(True, "up to date")


if TYPE_CHECKING:
    def _is_session(session: DelegatingSession[Session]) -> Session:
        """mypy checks here that DelegatingSession satisfies the protocol."""
        return session

    def _is_repository(repo: SessionRepository) -> Repository:
        """mypy checks here that SessionRepository satisfies the protocol."""
        return repo
