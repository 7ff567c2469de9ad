"""Which database a request's reads may use: the caller they are for, bound per request.

With a read replica (``DATABASE_READ_URL``) the storage sends the reads of a request to
the replica unless its caller wrote within ``READ_YOUR_WRITES_SECONDS`` (a replica may
not have replayed that write yet). The caller is known to the transport (the verified
token's client and subject, or the address when authorization is off), the routing to
the storage; a context variable carries it between them, as the audit observer is
carried, so no interaction's signature has to name it. Work that no request asks for
(background jobs, the audit mover, the command line) binds nothing and reads the primary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from fhir_server.service.access import Caller

#: the key of the caller whose request runs in this context (None: no request)
_caller: ContextVar[str | None] = ContextVar("fhir_read_caller", default=None)


def caller_key(caller: Caller | None, address: str | None) -> str:
    """The key under which a caller's writes are remembered: the token's client and
    subject (two users of one app do not wait for each other's writes), else the
    address the request came from."""
    if caller is not None:
        return f"c:{caller.client_id}:{caller.user or ''}"
    return f"a:{address or '-'}"


@contextmanager
def reading_for(key: str) -> Iterator[None]:
    """Reads in this block are for the caller ``key`` (the replica may serve them)."""
    token = _caller.set(key)
    try:
        yield
    finally:
        _caller.reset(token)


def current_caller() -> str | None:
    """The caller whose request is running, or None outside a request."""
    return _caller.get()
