"""A small Starlette app wired like fhir_server.app, and log capture, for these tests."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from fhir_server.api.routes import ROUTER
from fhir_server.logs import JsonFormatter
from fhir_server.observability import current_request_id, note_bundle_type
from fhir_server.observability.context import RequestIdFilter
from fhir_server.observability.interactions import ROUTE_KEY
from fhir_server.observability.metrics import FhirMetrics, metrics_route
from fhir_server.observability.middleware import ObservabilityMiddleware, request_id_from_scope

RESOURCE_TYPES = frozenset({"Patient", "Observation", "Encounter"})


class FakePool:
    """Answers get_stats() like psycopg_pool.AsyncConnectionPool."""

    def __init__(self, size: int = 4, available: int = 1, waiting: int = 2) -> None:
        self.stats = {"pool_min": 2, "pool_max": 10, "pool_size": size,
                      "pool_available": available, "requests_waiting": waiting}

    def get_stats(self) -> dict[str, int]:
        return dict(self.stats)


def matched(request: Request) -> None:
    """Mark the scope with the route table's route, as ``http.adapter`` does."""
    path = request.url.path.removeprefix("/fhir").strip("/")
    request.scope[ROUTE_KEY] = ROUTER.match(request.method, path)[0]


def build_app(metrics: FhirMetrics, pool: FakePool | None = None) -> Starlette:
    """Routes with the server's templates; exception handlers as in fhir_server.app."""
    seen: dict[str, Any] = {}

    async def read(request: Request) -> Response:
        matched(request)
        logging.getLogger("fhir_server.test").info("reading")
        seen["request_id"] = current_request_id()
        if request.path_params["id"] == "missing":
            return PlainTextResponse("gone", 404)
        return JSONResponse({"resourceType": request.path_params["resource_type"],
                             "request_id": current_request_id()})

    async def search(request: Request) -> Response:
        matched(request)
        return JSONResponse({"resourceType": "Bundle"})

    async def create(request: Request) -> Response:
        matched(request)
        return JSONResponse({}, 201)

    async def bundle(request: Request) -> Response:
        matched(request)
        body = orjson.loads(await request.body())
        note_bundle_type(body.get("type", ""))
        if body.get("fail"):
            raise HTTPException(400, "bad bundle")
        return JSONResponse({"resourceType": "Bundle"})

    async def boom(request: Request) -> Response:
        raise RuntimeError("secret detail of an unhandled error")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return PlainTextResponse(str(exc.detail), exc.status_code)

    async def unexpected(request: Request, exc: Exception) -> Response:
        # The wiring asked of fhir_server.app: the 500 is sent outside the middleware.
        return PlainTextResponse("internal error", 500, headers={
            "X-Request-ID": request_id_from_scope(request.scope) or ""})

    app = Starlette(
        routes=[
            Route("/fhir", bundle, methods=["POST"]),
            Route("/fhir/{resource_type}/{id}", read, methods=["GET", "PUT", "DELETE"]),
            Route("/fhir/{resource_type}", search, methods=["GET"]),
            Route("/fhir/{resource_type}", create, methods=["POST"]),
            Route("/boom", boom),
            metrics_route(lambda: pool, metrics=metrics),
        ],
        middleware=[Middleware(ObservabilityMiddleware, metrics=metrics,
                               resource_types=lambda: RESOURCE_TYPES)],
        exception_handlers={HTTPException: http_error, Exception: unexpected},
    )
    app.state.seen = seen
    return app


@pytest.fixture
def metrics() -> FhirMetrics:
    """An isolated in-process metrics set."""
    return FhirMetrics()


@pytest.fixture
def client(metrics: FhirMetrics) -> Iterator[TestClient]:
    """A client of the test app; unhandled errors come back as 500s."""
    with TestClient(build_app(metrics, FakePool()), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def log_records() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """JSON lines logged under ``fhir_server`` (as the server's root handler renders them)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("fhir_server")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lambda: [orjson.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def families(text: str) -> dict[str, Any]:
    """Parsed exposition text by metric family name."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample_value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels``, or None."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                return float(sample.value)
    return None
