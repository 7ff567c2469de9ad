"""Pure ASGI middleware: request id, access log, request metrics and Date in one pass.

One middleware rather than several: each ASGI layer costs a coroutine frame and a
``send`` wrapper per message, and they need the same facts (status, route, duration).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container
from email.utils import formatdate
from functools import lru_cache
from time import perf_counter, time
from typing import Final, NamedTuple

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_server.observability import access_log
from fhir_server.observability.context import RequestInfo, enter_request, exit_request
from fhir_server.observability.interactions import (
    BUNDLE,
    KNOWN_METHODS,
    NO_TYPE,
    UNKNOWN_TYPE,
    RouteInfo,
    classify,
)
from fhir_server.observability.metrics import FhirMetrics, RequestSeries, default_metrics

#: Scope key holding the request id, for code that runs after this middleware has
#: returned (Starlette's ServerErrorMiddleware calls the 500 handler outside of it).
SCOPE_KEY: Final = "fhir_server.request_id"
# Status recorded when the request was cancelled (client gone) before any response.
_CLIENT_CLOSED = 499

log = logging.getLogger(__name__)

ResourceTypes = Container[str] | Callable[[], Container[str]]


@lru_cache(maxsize=2)
def date_header(second: int) -> tuple[bytes, bytes]:
    """The ``Date`` header for a Unix time in whole seconds.

    Set here, when the response starts, instead of by uvicorn (``fhir-server serve``
    turns uvicorn's off): uvicorn refreshes its Date once a second, so a resource
    written just now could carry a ``Last-Modified`` later than the response's ``Date``,
    which RFC 9110 (8.8.2.1) forbids.
    """
    return b"date", formatdate(second, usegmt=True).encode("ascii")

# method, route, status, resource type label, If-None-Exist present, noted bundle type.
_PlanKey = tuple[str, RouteInfo, int, str, bool, str | None]


class _Plan(NamedTuple):
    """Everything derived from a request's bounded facts, computed once per kind."""

    series: RequestSeries
    route: str
    level: int


def request_id_from_scope(scope: Scope) -> str | None:
    """The id the middleware gave this request (e.g. for the unhandled-error handler)."""
    value = scope.get(SCOPE_KEY)
    return value if isinstance(value, str) else None


class ObservabilityMiddleware:
    """Request id, one access log record and the request metrics for each HTTP request.

    - ``X-Request-ID``: a sane incoming value is kept, otherwise one is generated; it is
      sent back on the response, set in the context (``context.current_request_id``) and
      stored in the scope (:data:`SCOPE_KEY`).
    - An exception escaping the application counts as a 500 (whatever was already sent)
      and its traceback goes on the access record; it is re-raised unchanged so that
      Starlette's ServerErrorMiddleware (outside of this) still renders the 500.
    """

    def __init__(self, app: ASGIApp, *, metrics: FhirMetrics | None = None,
                 resource_types: ResourceTypes | None = None,
                 logger: logging.Logger | None = None) -> None:
        """Wrap ``app``.

        ``resource_types`` bounds the ``resource_type`` label (the path value is the
        client's to choose): a container, or a callable returning one, called on first
        use and retried while it raises (e.g. before the lifespan loaded definitions).
        None accepts any value: tests only.
        """
        self.app = app
        self.metrics = metrics or default_metrics()
        self.logger = logger or logging.getLogger(access_log.ACCESS_LOGGER)
        self._types: Container[str] | None = None
        self._types_factory: Callable[[], Container[str]] | None = None
        if callable(resource_types):
            self._types_factory = resource_types
        else:
            self._types = resource_types
        self._plans: dict[_PlanKey, _Plan] = {}
        self._client_ids = access_log.ClientIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call; non-HTTP scopes pass straight through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        request_id: str | None = None
        authorization: bytes | None = None
        conditional = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = access_log.sane_request_id(value)
            elif name == b"authorization":
                authorization = value
            elif name == b"if-none-exist":
                conditional = True
        if request_id is None:
            request_id = access_log.new_request_id()
        scope[SCOPE_KEY] = request_id
        info = RequestInfo(request_id)
        id_header = (b"x-request-id", request_id.encode("ascii"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the application may reuse its own header list.
                message = {**message, "headers": [*message.get("headers", ()), id_header,
                                                  date_header(int(time()))]}
            await send(message)

        token = enter_request(info)
        failure: BaseException | None = None
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            try:
                self._finish(scope, info, perf_counter() - start, status, failure,
                             authorization, conditional)
            except Exception:  # never let bookkeeping break (or mask) the request
                log.exception("recording the request's metrics or access log failed")
            finally:
                exit_request(token)
                failure = None  # break the frame <-> traceback cycle early

    def _finish(self, scope: Scope, info: RequestInfo, seconds: float, status: int,
                failure: BaseException | None, authorization: bytes | None,
                conditional: bool) -> None:
        failed = isinstance(failure, Exception)
        if failed or status == 0:
            # Unhandled error (even after a 2xx start the response is broken), or no
            # answer at all: the server sends a 500 then. A cancelled request that never
            # answered (client gone, shutdown) is not the server's error.
            status = _CLIENT_CLOSED if failure is not None and not failed else 500
        method = scope["method"]
        if method not in KNOWN_METHODS:
            method = "OTHER"
        route = classify(scope)
        resource_type = NO_TYPE
        if route.typed:
            resource_type = self._type_label(scope.get("path_params", {}).get("resource_type"))
        key = (method, route, status, resource_type, conditional, info.bundle_type)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(*key)
        self.metrics.observe(plan.series, seconds)
        if self.logger.isEnabledFor(plan.level):
            access_log.log_access(
                self.logger, plan.level, request_id=info.request_id, method=method,
                route=plan.route, status=status, duration_ms=round(seconds * 1000, 3),
                client=scope.get(access_log.CLIENT_KEY) or self._client_ids(authorization),
                exc_info=(type(failure), failure, failure.__traceback__)
                if failure is not None and failed else None)

    def _plan(self, method: str, route_info: RouteInfo, status: int, resource_type: str,
              conditional: bool, bundle_type: str | None) -> _Plan:
        """Labels, metric children and log level of one kind of request."""
        interaction = route_info.interaction
        transaction = None
        if interaction == "create" and conditional:
            interaction = "conditional-create"
        elif interaction == BUNDLE and bundle_type is not None:
            interaction = transaction = bundle_type
        series = self.metrics.series(method, route_info.route, status, interaction,
                                     resource_type, transaction)
        # status is final here: 500 for unhandled errors, so they log at ERROR too.
        level = access_log.access_level(status, route_info.route, failed=False)
        return _Plan(series, route_info.route, level)

    def _type_label(self, value: object) -> str:
        """The path's resource type if it is a known type (bounded label values)."""
        if not isinstance(value, str):
            return NO_TYPE
        known = self._types
        if known is None:
            if self._types_factory is None:
                return value
            try:
                known = self._types = self._types_factory()
            except Exception:  # not available yet (lifespan still starting)
                return UNKNOWN_TYPE
        return value if value in known else UNKNOWN_TYPE
