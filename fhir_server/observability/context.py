"""The current request's id (and bundle type) for code running inside a request.

The middleware sets a :class:`RequestInfo` in a context variable for the duration of each
HTTP request. Handlers, services and log records read it from there; nothing has to be
passed down the call chain.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from typing import Final

#: Bundle types :func:`note_bundle_type` accepts (the label values of
#: ``fhir_transactions_total{type}``).
BUNDLE_TYPES: Final = frozenset({"batch", "transaction"})


class RequestInfo:
    """What the middleware knows about the request in progress, shared with the handler.

    The handler mutates this object (:func:`note_bundle_type`); the middleware reads it
    after the response. Mutating a shared object rather than setting a context variable
    keeps the note visible to the middleware even if the handler ran in a copied context.
    """

    __slots__ = ("bundle_type", "request_id")

    def __init__(self, request_id: str) -> None:
        """Start with the request's id and no bundle type."""
        self.request_id = request_id
        self.bundle_type: str | None = None


# A ContextVar has to live at module level (it is the key into each task's context);
# its value is per request, so this is not process-wide mutable state.
_current: ContextVar[RequestInfo | None] = ContextVar("fhir_request", default=None)


def current_request() -> RequestInfo | None:
    """The request in progress in this context, or None outside a request."""
    return _current.get()


def current_request_id() -> str | None:
    """The id of the request in progress (as sent back in ``X-Request-ID``), or None."""
    info = _current.get()
    return info.request_id if info is not None else None


def note_bundle_type(kind: object) -> None:
    """Tell the middleware that this request is a ``batch`` or ``transaction`` Bundle.

    The bundle endpoint calls this as soon as it has read ``Bundle.type``; the middleware
    then counts ``fhir_transactions_total{type, outcome}`` from the final status and uses
    the type as the request's ``interaction`` label. Other values and calls outside a
    request are ignored.
    """
    info = _current.get()
    # Any JSON value may arrive here (Bundle.type as sent): only the two names count.
    if info is not None and isinstance(kind, str) and kind in BUNDLE_TYPES:
        info.bundle_type = kind


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record logged while a request is in progress.

    Install it on the root *handler* (handler filters see records from every logger;
    logger filters only see records logged on that very logger). Records outside a
    request get no attribute, so the JSON formatter leaves the key out; a text format
    should give ``%(request_id)s`` a default (``logging.Formatter(defaults=...)``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the current request id unless the record already carries one."""
        if not hasattr(record, "request_id"):
            info = _current.get()
            if info is not None:
                record.request_id = info.request_id
        return True


def enter_request(info: RequestInfo) -> Token[RequestInfo | None]:
    """Make ``info`` the current request (middleware only); pass the token to exit."""
    return _current.set(info)


def exit_request(token: Token[RequestInfo | None]) -> None:
    """Restore the context as it was before :func:`enter_request`."""
    _current.reset(token)
