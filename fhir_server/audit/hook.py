"""The write observer of the current request, as storage sees it.

Storage must record a write's AuditEvent in the write's own transaction (a write
committed without its event must be impossible), but it must not know what an audit
trail is. So it asks this module for the current request's observer (a context
variable, set by :mod:`fhir_server.audit.trail` for the length of one HTTP request) and,
when there is one, hands it the connection and the write's result before the
transaction commits. Background jobs and the importer run without an observer.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol

from fhir_server.service.repository import WriteResult


class WriteObserver(Protocol):
    """Records one write's AuditEvent on the write's connection, in its transaction."""

    async def written(self, conn: Any, resource_type: str, id: str, method: str,
                      result: WriteResult, hold: bool = False) -> None:
        """Called after the write's statement, before its transaction commits; with
        ``hold`` the event may wait for :meth:`flush` (many writes, one transaction)."""
        ...

    async def flush(self, conn: Any) -> None:
        """Called before a transaction of many writes commits: record what was held."""
        ...


#: the observer of the request being served (None: nothing to record)
OBSERVER: ContextVar[WriteObserver | None] = ContextVar("fhir_audit_observer", default=None)


def observer() -> WriteObserver | None:
    """The current request's write observer, if it is audited."""
    return OBSERVER.get()
