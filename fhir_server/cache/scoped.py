"""A CachedRepository seen through an access scope (``CachedRepository.scoped``)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from fhir_server.service.access import AccessScope
from fhir_server.service.delegating import Delegating
from fhir_server.service.repository import (
    ExplainingStore,
    Readiness,
    Repository,
    Session,
    StoredVersion,
    WriteMethod,
    WriteResult,
)


class ScopedView(Delegating[Repository]):
    """A CachedRepository seen through an access scope: searches and history go to the
    scoped repository, past the cache, and so do reads of the types the scope restricts
    (others come from the cache); writes go through the scoped repository (its checks
    apply), invalidating the owner's cache."""

    def __init__(self, owner: CachedRepository, inner: Repository, scope: AccessScope) -> None:
        super().__init__(inner)
        self._owner = owner
        self._scope = scope

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The owner's cached read when the scope admits every resource of the type."""
        if self._scope.restricts(resource_type):
            return await self._inner.read(resource_type, id)
        return await self._owner.read(resource_type, id)

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None,
                    index: dict[str, list[dict[str, Any]]] | None = None) -> WriteResult:
        """A write checked by the scoped repository, invalidating the owner's cache."""
        return await self._owner.write_through(self._inner, resource_type, id, content,
                                               method, if_match, index)

    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """A scoped transaction whose writes invalidate the owner's cache."""
        return self._owner.tracked_transaction(self._inner)

    def scoped(self, scope: AccessScope) -> Repository:
        """The owner seen through another scope."""
        return self._owner.scoped(scope)

    def explaining(self) -> AbstractAsyncContextManager[ExplainingStore]:
        """The scoped repository's: searches are never cached."""
        return self._inner.explaining()

    async def readiness(self) -> Readiness:
        """The owner's readiness."""
        return await self._owner.readiness()


if TYPE_CHECKING:
    from fhir_server.cache.repository import CachedRepository  # (which builds views)

    def _is_repository(view: ScopedView) -> Repository:
        """mypy checks here that it satisfies the protocol."""
        return view
