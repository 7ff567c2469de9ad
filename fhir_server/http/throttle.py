"""Per-client rate limits on ``/fhir`` (``RATE_LIMIT_PER_MINUTE``), counted in Redis when
it is configured (shared by replicas) and per process otherwise."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.errors import FhirError
from fhir_server.http.responses import error_response
from fhir_server.observability.access_log import client_id

WINDOW_SECONDS = 60


class Throttle:
    """ASGI middleware answering 429 (OperationOutcome ``throttled``) past the limit.

    A client is the token's client id when a bearer token names one, else the caller's
    address; operator endpoints (probes, metrics) are never limited.
    """

    def __init__(self, app: ASGIApp, *, per_minute: int, limiter: Any) -> None:
        self.app = app
        self.per_minute = per_minute
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request and refuse it when its client is over the limit."""
        if (self.per_minute <= 0 or scope["type"] != "http"
                or not scope["path"].startswith("/fhir")):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        who = client_id(headers.get(b"authorization"))
        if who == "-":
            client = scope.get("client")
            who = f"ip:{client[0]}" if client else "ip:-"
        decision = await self.limiter().hit(f"rl:{who}", self.per_minute, WINDOW_SECONDS)
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        error = FhirError(f"rate limit of {self.per_minute} requests per minute exceeded",
                          status=429, code="throttled",
                          headers={"Retry-After": str(max(1, decision.retry_after))})
        response = error_response(Request(scope, receive), error)
        await response(scope, receive, send)
