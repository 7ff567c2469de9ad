"""HTTP to the FHIR router: an ASGI app for ``/fhir``.

It turns the ASGI request into a :class:`FhirRequest` (path relative to the base, query,
headers, the body read within ``MAX_BODY_BYTES``, the request context), has the router
match and run it, and writes the :class:`FhirResponse` back. The response media type is
negotiated before anything runs, so a 406 never follows a write.

With ``AUTH_MODE=smart`` the request context comes from the verified Bearer token (the
CapabilityStatement alone is public), and rate limits and requests in flight count per
verified client, or per address while the caller is not authenticated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import lru_cache

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from fhir_server.api.body import read_limited
from fhir_server.api.messages import FhirRequest, FhirResponse, error_response
from fhir_server.api.router import PUBLIC, Route, Router
from fhir_server.audit.trail import Auditor
from fhir_server.auth.verify import Authenticator
from fhir_server.cache.inflight import InFlight, Slot
from fhir_server.cache.ratelimit import RateLimiter
from fhir_server.errors import FhirError, NotAcceptable, Unauthorized
from fhir_server.http.hosts import host_allowed
from fhir_server.http.responses import (
    _DEFAULT,
    Negotiated,
    http_response,
    log_server_error,
)
from fhir_server.observability.access_log import CLIENT_KEY
from fhir_server.observability.interactions import ROUTE_KEY
from fhir_server.observability.middleware import SCOPE_KEY as REQUEST_ID_KEY
from fhir_server.service.access import RequestContext
from fhir_server.service.consistency import caller_key, reading_for
from fhir_server.service.context import ServiceContext

_PREFIX = "/fhir"
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
#: the window of RATE_LIMIT_PER_MINUTE
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Guards:
    """Who may call: the token verifier (None: AUTH_MODE=off), the rate limiter
    (None: no limit) with its requests per minute, and the count of requests in flight
    (None: no limit) with its most per client."""

    authenticator: Authenticator | None = None
    limiter: RateLimiter | None = None
    per_minute: int = 0
    in_flight: InFlight | None = None
    max_in_flight: int = 0


@lru_cache(maxsize=64)
def _base(scheme: str, host: str, root_path: str) -> str:
    return f"{scheme}://{host}{root_path}{_PREFIX}"


def request_base(scope: Scope, headers: Headers) -> str:
    """The FHIR base this request was sent to (scheme, Host, root path)."""
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return _base(scope.get("scheme", "http"), host, scope.get("root_path", ""))


class FhirApp:
    """The ASGI app answering every path under ``/fhir`` through ``router``."""

    def __init__(self, router: Router, services: Callable[[], ServiceContext],
                 guards: Callable[[], Guards] = Guards,
                 audit: Callable[[], Auditor | None] = lambda: None) -> None:
        self.router = router
        self._services = services
        self._guards = guards
        self._audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One HTTP request through the router."""
        held: list[Slot] = []
        try:
            answer, neg, ctx = await self._answer(scope, receive, held)
            await http_response(answer, neg, ctx.base_url)(scope, receive, send)
        finally:
            for slot in held:  # also when the client went away or the task was cancelled
                await slot.release()

    async def _answer(self, scope: Scope, receive: Receive, held: list[Slot]
                      ) -> tuple[FhirResponse, Negotiated, ServiceContext]:
        """The answer to the request (its event stored first), its negotiated format and
        the context it ran in; the in-flight slot it took goes into ``held``."""
        headers = Headers(scope=scope)
        query = scope.get("query_string", b"").decode("latin-1")
        method = scope["method"]
        services = self._services()
        base = request_base(scope, headers)
        configured = services.settings.fhir_base_url
        if configured and not host_allowed(headers.get("host"),
                                           services.settings.allowed_host_list):
            base = configured.rstrip("/")  # a forged Host is no local base (nor audience)
        request_id = scope.get(REQUEST_ID_KEY)
        context = RequestContext(request_id if isinstance(request_id, str) else "-")
        ctx = services.for_request(context, base)
        neg = _DEFAULT
        path = scope["path"][len(_PREFIX):].strip("/")
        auditor = self._audit()
        client = scope.get("client")
        trail = None if auditor is None else auditor.begin(
            context, base, method, path, query, client[0] if client else None)
        try:
            try:
                neg, refused = _negotiate(headers, query)
                route, params = self.router.match(method, path)
                if refused is not None and not route.raw:
                    raise refused
                scope[ROUTE_KEY] = route
                scope["path_params"] = params
                if trail is not None:
                    trail.matched(route, params)
                context, slot = await self._admit(scope, headers, route, context, ctx)
                if slot is not None:
                    held.append(slot)
                if trail is not None:
                    trail.context = context
                if context.scope is not None:
                    ctx = ctx.for_request(context, base)
                body = stream = None
                if method in _WITH_BODY and route.raw:
                    stream = _chunks(receive)  # the handler reads it within its limit
                elif method in _WITH_BODY:
                    body = await read_limited(_chunks(receive),
                                              headers.get("content-length"),
                                              ctx.settings.max_body_bytes)
                request = FhirRequest(method, path, query, headers, body, base_url=base,
                                      context=context, stream=stream, raw=route.raw)
                # whose writes this request's reads must see (a read replica's routing)
                with reading_for(caller_key(context.caller, client[0] if client else None)):
                    answer = await self.router.handle(route, params, request, ctx)
            except FhirError as exc:
                log_server_error(method, exc)
                answer = error_response(exc)
            except Exception:
                if trail is not None:  # the 500 is audited too, then answered as before
                    await trail.finish(error_response(FhirError("internal server error")))
                raise
            if trail is not None:  # nothing is answered before its event is stored
                answer = await trail.finish(answer)
        finally:
            if trail is not None:
                trail.end()
        return answer, neg, ctx

    async def _admit(self, scope: Scope, headers: Headers, route: Route,
                     context: RequestContext, ctx: ServiceContext,
                     ) -> tuple[RequestContext, Slot | None]:
        """The request's context from its token (Unauthorized), within the rate limit
        and the requests in flight of its client (429); the slot it holds, if counted."""
        guards = self._guards()
        client = scope.get("client")
        address = f"ip:{client[0]}" if client else "ip:-"
        if guards.authenticator is None or route.permission == PUBLIC:
            await _throttle(guards, address)
            return context, await _hold(guards, address)
        try:
            caller, access = await guards.authenticator.authenticate(
                headers.get("authorization"), ctx.bases, ctx)
        except Unauthorized:
            scope[CLIENT_KEY] = "-"  # not the client a refused token claims to be
            await _throttle(guards, address)
            raise
        scope[CLIENT_KEY] = caller.client_id
        who = f"client:{caller.client_id}"
        await _throttle(guards, who)
        return RequestContext(context.request_id, caller, access), await _hold(guards, who)


async def _throttle(guards: Guards, who: str) -> None:
    if guards.limiter is not None:
        await throttle(guards.limiter, guards.per_minute, f"rl:{who}")


async def _hold(guards: Guards, who: str) -> Slot | None:
    """A slot among ``who``'s requests in flight; 429 (``throttled``, Retry-After) when
    it has MAX_IN_FLIGHT_PER_CLIENT running already."""
    if guards.in_flight is None or guards.max_in_flight <= 0:
        return None
    slot = await guards.in_flight.acquire(who, guards.max_in_flight)
    if slot is None:
        raise FhirError(f"{guards.max_in_flight} requests of this client are already "
                        "running, the most it may have at once (MAX_IN_FLIGHT_PER_CLIENT); "
                        "send the next one when one has been answered", status=429,
                        code="throttled", headers={"Retry-After": "1"})
    return slot


async def throttle(limiter: RateLimiter, per_minute: int, key: str) -> None:
    """429 (``throttled``, with Retry-After) when ``key`` is over ``per_minute``
    requests in the window (no limit when ``per_minute`` is 0)."""
    if per_minute <= 0:
        return
    decision = await limiter.hit(key, per_minute, WINDOW_SECONDS)
    if not decision.allowed:
        raise FhirError(f"rate limit of {per_minute} requests per minute exceeded",
                        status=429, code="throttled",
                        headers={"Retry-After": str(max(1, decision.retry_after))})


def _negotiate(headers: Headers, query: str) -> tuple[Negotiated, NotAcceptable | None]:
    """The negotiated response format, or the 406 to answer unless the route takes raw
    content (a Binary's ``Accept: application/pdf``; its errors are FHIR JSON)."""
    try:
        return Negotiated.of(headers, query), None
    except NotAcceptable as exc:
        return _DEFAULT, exc


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's chunks, as ASGI delivers them."""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return
        elif message["type"] == "http.disconnect":
            # never act on half a body; nobody reads this answer, the logs do
            raise FhirError("the request body was not received in full: the client went "
                            "away or paused longer than BODY_TIMEOUT_SECONDS", status=408,
                            code="incomplete")
