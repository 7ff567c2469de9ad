"""The authorization server's rate limit: per address, on /auth only."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from fhir_server.cache.ratelimit import RateLimiter
from fhir_server.http.throttle import Throttle


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def test_auth_endpoints_are_limited_per_address_and_fhir_is_not_counted_here() -> None:
    limiter = RateLimiter(None)
    app = Throttle(Starlette(routes=[Route("/auth/token", ok, methods=["POST"]),
                                     Route("/fhir/metadata", ok)]),
                   per_minute=2, limiter=lambda: limiter)
    with TestClient(app) as client:
        assert [client.post("/auth/token").status_code for _ in range(2)] == [200, 200]
        refused = client.post("/auth/token")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["issue"][0]["code"] == "throttled"
        assert [client.get("/fhir/metadata").status_code for _ in range(3)] == [200] * 3
