"""gzip only for clients that ask for it."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from fhir_server.http.compression import Gzip


def _client() -> TestClient:
    async def big(request: Request) -> PlainTextResponse:
        return PlainTextResponse("x" * 10_000)

    async def small(request: Request) -> PlainTextResponse:
        return PlainTextResponse("x" * 100)

    app = Starlette(routes=[Route("/big", big), Route("/small", small)],
                    middleware=[Middleware(Gzip, minimum_size=4096, compresslevel=5)])
    return TestClient(app)


def test_gzip_when_asked_and_large_enough() -> None:
    client = _client()
    zipped = client.get("/big", headers={"Accept-Encoding": "deflate, gzip;q=0.5"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < 200
    assert zipped.text == "x" * 10_000
    assert "content-encoding" not in client.get(
        "/small", headers={"Accept-Encoding": "gzip"}).headers


def test_nothing_changes_when_not_asked() -> None:
    client = _client()
    for encoding in ("identity", "br", ""):
        response = client.get("/big", headers={"Accept-Encoding": encoding})
        assert "content-encoding" not in response.headers
        assert "vary" not in response.headers
        assert response.headers["content-length"] == "10000"
