"""Rate limits on the authorization server (``/auth``), per caller address.

``/fhir`` counts in its adapter, per verified client (``http.adapter``); here the
authorization server's endpoints are limited by address, so that guessing passwords,
client secrets or codes is as slow as ``RATE_LIMIT_PER_MINUTE`` allows.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.errors import FhirError
from fhir_server.http.adapter import throttle
from fhir_server.http.responses import error_response


class Throttle:
    """ASGI middleware answering 429 (with ``Retry-After``) past the limit on ``/auth``."""

    def __init__(self, app: ASGIApp, *, per_minute: int, limiter: Any) -> None:
        self.app = app
        self.per_minute = per_minute
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request and refuse it when its address is over the limit."""
        if (self.per_minute <= 0 or scope["type"] != "http"
                or not scope["path"].startswith("/auth/")):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        who = f"ip:{client[0]}" if client else "ip:-"
        try:
            await throttle(self.limiter(), self.per_minute, f"rl:auth:{who}")
        except FhirError as error:
            await error_response(Request(scope, receive), error)(scope, receive, send)
            return
        await self.app(scope, receive, send)
