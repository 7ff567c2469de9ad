"""The ASGI application: lifespan (pool, definitions), routers and the one error handler."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fhir_server import __version__
from fhir_server.api import (
    bundle,
    docs,
    history,
    instance,
    metadata,
    openapi,
    operations,
    operator,
    search,
    type,
)
from fhir_server.cache.ratelimit import RateLimiter
from fhir_server.cache.redis_client import open_redis
from fhir_server.errors import BadRequest, FhirError, MethodNotAllowed, NotFound
from fhir_server.http.compression import Gzip
from fhir_server.http.responses import error_response
from fhir_server.http.throttle import Throttle
from fhir_server.logs import configure_logging
from fhir_server.observability.metrics import metrics_route, sample_forever
from fhir_server.observability.middleware import ObservabilityMiddleware, request_id_from_scope
from fhir_server.paths import data_dir
from fhir_server.runtime import build_context
from fhir_server.service.reindex import JobRunner
from fhir_server.settings import Settings, load_settings
from fhir_server.storage.jobs import PgJobs
from fhir_server.storage.pool import make_pool

log = logging.getLogger(__name__)

#: Bodies from this size on are gzip-compressed for clients that accept it.
GZIP_MINIMUM_BYTES = 4096
#: Response headers browser scripts may read on cross-origin answers.
CORS_EXPOSED = ("ETag", "Location", "Last-Modified", "Content-Location", "X-Request-ID",
                "Retry-After")


def _plain(endpoint: Callable[..., Any]) -> Callable[[Request], Awaitable[Response]]:
    wants_request = "request" in inspect.signature(endpoint).parameters
    is_async = inspect.iscoroutinefunction(endpoint)

    async def handle(request: Request) -> Response:
        kwargs = dict(request.path_params)
        if wants_request:
            kwargs["request"] = request
        # The synchronous endpoints (API docs) only format bytes already in memory.
        result = await endpoint(**kwargs) if is_async else endpoint(**kwargs)
        assert isinstance(result, Response)
        return result
    return handle


class _TypeConvertor(Convertor[str]):
    regex = "[A-Z][A-Za-z]{1,63}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _IdConvertor(_TypeConvertor):
    regex = "[A-Za-z0-9\\-.]{1,64}"


register_url_convertor("fhirtype", _TypeConvertor())
register_url_convertor("fhirid", _IdConvertor())


def plain_routes(router: APIRouter) -> list[Route]:
    """A router's endpoints as plain Starlette routes.

    Our handlers take the Request and parse it themselves, and the OpenAPI document is
    our own (``api/openapi.py``), so FastAPI's per-request parameter solving and its extra
    middleware layers would be pure overhead on the hot paths (about a third of a read's
    CPU time, measured with bench/read.py).
    """
    routes = []
    for route in router.routes:
        assert isinstance(route, APIRoute)
        routes.append(Route(route.path, _plain(route.endpoint),
                            methods=sorted(route.methods or ()), name=route.name))
    return routes


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application; connections are opened when its lifespan starts."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = make_pool(settings)
        # Do not wait for connections: the process must come up (and answer liveness)
        # while the database is away; readiness reports it.
        await pool.open(wait=False)
        app.state.pool = pool
        redis = open_redis(settings)
        app.state.ctx = build_context(settings, pool, redis)
        app.state.rate_limiter = RateLimiter(redis)
        sampler = asyncio.create_task(sample_forever(lambda: pool), name="metrics-sampler")
        app.state.jobs = PgJobs(pool)
        runner = JobRunner(app.state.ctx, app.state.jobs)
        jobs_task = asyncio.create_task(runner.loop(), name="background-jobs")
        app.state.capability_dir = data_dir("capability")
        app.state.capability = None
        ctx = app.state.ctx
        app.state.openapi = openapi.openapi_provider(
            sorted(ctx.resource_types), version=__version__,
            search_params={t: [(c, p.type, p.description[:200])
                               for c, p in sorted(ctx.search.registry.params(t).items())]
                           for t in ctx.resource_types})
        # The definitions, registry and validator live as long as the process: keep them
        # out of the cyclic collector, whose full passes would otherwise walk them all
        # again (tens of ms each, paid by whichever request triggers one).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            for task in (jobs_task, sampler):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if redis is not None:
                await redis.close()
            await pool.close()

    async def fhir_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FhirError)
        return error_response(request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            err: FhirError = MethodNotAllowed(
                f"{request.method} is not supported on {request.url.path}")
        elif exc.status_code == 404:
            err = NotFound(f"no route for {request.url.path}")
        else:
            err = FhirError(str(exc.detail), status=exc.status_code, code="processing")
        return error_response(request, err)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        return error_response(request, BadRequest(f"malformed request: {exc}"))

    async def unexpected(request: Request, exc: Exception) -> Response:
        # The access-log middleware already logged the traceback with the route template.
        response = error_response(request, FhirError("internal server error"))
        if rid := request_id_from_scope(request.scope):
            response.headers["X-Request-ID"] = rid
        return response

    app: Starlette  # the lambdas below run after it is built
    # The read route first, restricted to well-formed types and ids so that it cannot
    # shadow _history, _search, $operations or metadata: Starlette tries routes in
    # order, and a read is the most frequent request. Everything else falls through.
    fast_read = Route("/fhir/{resource_type:fhirtype}/{id:fhirid}", _plain(instance.read),
                      methods=["GET", "HEAD"], name="read-fast")
    # Metrics and logs label requests by template; keep the read's usual one (matching
    # uses the regex compiled above, not this attribute).
    fast_read.path = "/fhir/{resource_type}/{id}"
    routes: list[BaseRoute] = [fast_read, metrics_route(lambda: app.state.pool)]
    # Order matters: fixed paths (metadata, _history, _search) before {resource_type}.
    for router in (operator.router, metadata.router, operations.router, bundle.router,
                   history.router, search.router, type.router, instance.router):
        routes += plain_routes(router)
    routes += plain_routes(docs.docs_router(lambda: app.state.openapi()))
    middleware = [Middleware(ObservabilityMiddleware,
                             resource_types=lambda: app.state.ctx.resource_types)]
    if settings.cors_origin_list:
        # Browser apps (SMART apps among them) on other origins; preflights are answered
        # here, and the headers a FHIR client reads are exposed to scripts.
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["*"], expose_headers=list(CORS_EXPOSED), max_age=600))
    if settings.rate_limit_per_minute > 0:
        middleware.append(Middleware(Throttle, per_minute=settings.rate_limit_per_minute,
                                     limiter=lambda: app.state.rate_limiter))
    # Searchsets and histories of many resources shrink about tenfold; small answers
    # (a read of one Patient) stay as they are. Level 5: most of the gain of 9, at a
    # fraction of its CPU; large bodies are compressed off the event loop.
    middleware.append(Middleware(Gzip, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=5))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={
        FhirError: fhir_error,
        StarletteHTTPException: http_error,
        RequestValidationError: invalid_request,
        Exception: unexpected,
    })
    return app


def app_factory() -> Starlette:
    """Entry point for ``uvicorn --factory``: settings from the environment."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
