"""DelegatingSession: a Session that forwards every call to an inner Session.

Wrappers of the Repository protocol (the Redis read cache, the importer's write-behind
sessions) change only a few interactions; they subclass this and override those, and
the rest (history, searches, includes, locks) reach the inner session unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fhir_server.service.repository import (
    HistoryPage,
    HistoryQuery,
    SearchRow,
    Session,
    StoredVersion,
    WriteMethod,
    WriteResult,
)

if TYPE_CHECKING:
    from fhir_server.search.compile import Query

InnerT = TypeVar("InnerT", bound=Session)


class DelegatingSession(Generic[InnerT]):
    """The Session protocol over ``inner``; every call is forwarded as it is.

    :meth:`_before_observing` is awaited before each call except ``write``, for
    subclasses that must bring the inner session up to date before it is looked at.
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

    async def search_page(self, query: Query, limit: int, cursor: list[Any] | None,
                          backwards: bool) -> list[tuple[SearchRow, list[Any]]]:
        """Search matches, from ``inner``."""
        await self._before_observing()
        return await self._inner.search_page(query, limit, cursor, backwards)

    async def search_total(self, query: Query) -> int:
        """The number of matches, from ``inner``."""
        await self._before_observing()
        return await self._inner.search_total(query)

    async def search_estimate(self, query: Query) -> int:
        """The planner's estimate, from ``inner``."""
        await self._before_observing()
        return await self._inner.search_estimate(query)

    async def include(self, rids: list[int], p_values: list[int], target_type: str | None,
                      limit: int) -> list[SearchRow]:
        """``_include`` targets, from ``inner``."""
        await self._before_observing()
        return await self._inner.include(rids, p_values, target_type, limit)

    async def revinclude(self, targets: list[tuple[str, str]], p_values: list[int],
                         limit: int) -> list[SearchRow]:
        """``_revinclude`` sources, from ``inner``."""
        await self._before_observing()
        return await self._inner.revinclude(targets, p_values, limit)

    async def lock(self, *key: str) -> None:
        """The advisory lock of a conditional interaction, taken by ``inner``."""
        await self._before_observing()
        await self._inner.lock(*key)


if TYPE_CHECKING:
    def _is_session(session: DelegatingSession[Session]) -> Session:
        """mypy checks here that DelegatingSession satisfies the protocol."""
        return session
