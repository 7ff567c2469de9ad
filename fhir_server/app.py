"""The ASGI application: lifespan (pool, definitions), routers and the one error handler."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from fhir_server import __version__
from fhir_server.api import openapi
from fhir_server.api.routes import ROUTER
from fhir_server.audit.trail import Auditor
from fhir_server.auth import discovery
from fhir_server.auth.jwks import RemoteJwks
from fhir_server.auth.scopes import access_scope
from fhir_server.auth.server.routes import AuthServer
from fhir_server.auth.verify import Authenticator
from fhir_server.blobs.sweep import sweep_forever
from fhir_server.cache.inflight import InFlight
from fhir_server.cache.ratelimit import RateLimiter
from fhir_server.cache.recent_writes import RecentWrites
from fhir_server.cache.redis_client import RedisClient, open_redis
from fhir_server.errors import FhirError, MethodNotAllowed, NotFound
from fhir_server.http import docs, operator
from fhir_server.http.adapter import FhirApp, Guards, request_base
from fhir_server.http.compression import Gzip
from fhir_server.http.hosts import TrustedHosts
from fhir_server.http.responses import error_response
from fhir_server.http.throttle import Throttle
from fhir_server.logs import configure_logging
from fhir_server.observability.metrics import (
    count_read,
    metrics_route,
    sample_forever,
    set_audit_backlog,
    set_replica_lag,
)
from fhir_server.observability.middleware import ObservabilityMiddleware, request_id_from_scope
from fhir_server.runtime import build_context
from fhir_server.service.export_runner import ExportRunner
from fhir_server.service.reindex import JobRunner
from fhir_server.settings import Settings, load_settings
from fhir_server.storage.blobs import PgBlobReferences
from fhir_server.storage.pool import FhirPool, make_pool
from fhir_server.storage.replica import Replica

log = logging.getLogger(__name__)

#: Bodies from this size on are gzip-compressed for clients that accept it.
GZIP_MINIMUM_BYTES = 4096
#: Response headers browser scripts may read on cross-origin answers.
CORS_EXPOSED = ("ETag", "Location", "Last-Modified", "Content-Location", "X-Request-ID",
                "Retry-After", "X-Progress")


class _FhirPathConvertor(Convertor[str]):
    """The rest of a path under ``/fhir``: nothing, or ``/`` and anything."""

    regex = "(?:/.*)?"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("fhirpath", _FhirPathConvertor())


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application; connections are opened when its lifespan starts."""
    settings = settings or load_settings()
    # the built-in OAuth 2 / SMART authorization server (/auth/..., OpenID discovery)
    auth_server = AuthServer(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = make_pool(settings)
        # Do not wait for connections: the process must come up (and answer liveness)
        # while the database is away; readiness reports it.
        await pool.open(wait=False)
        app.state.pool = pool
        await auth_server.open()
        redis = open_redis(settings)
        replica = read_replica(settings, pool, redis)
        if replica is not None:  # DATABASE_READ_URL: reads of requests may go there
            await replica.pool.open(wait=False)
        app.state.ctx = build_context(settings, pool, redis, replica)
        # AUDIT=true: an AuditEvent (IHE BALP) for every /fhir request
        search = app.state.ctx.search
        app.state.auditor = (Auditor(pool, search.indexer, search.registry,
                                     settings.local_bases, settings.search_text_language,
                                     report=set_audit_backlog)
                             if settings.audit else None)
        if app.state.auditor is not None:  # staged events -> searchable resources
            app.state.auditor.start()
        app.state.rate_limiter = RateLimiter(redis)
        tasks = [asyncio.create_task(sample_forever(lambda: pool), name="metrics-sampler")]
        if replica is not None:
            tasks.append(asyncio.create_task(replica.probe_forever(), name="replica-probe"))
        authenticator = None
        if settings.auth_mode == "smart":
            external = (RemoteJwks(settings.auth_issuer, settings.auth_jwks_url, redis)
                        if settings.auth_issuer else None)
            authenticator = Authenticator(settings, pool, external=external)
            try:
                await authenticator.refresh()
            except Exception as exc:  # the database is away: keys are read on first use
                log.error("cannot read the token signing keys yet: %s", exc)
            tasks.append(asyncio.create_task(authenticator.refresh_forever(),
                                             name="token-revocations"))
        app.state.authenticator = authenticator
        app.state.guards = Guards(authenticator, app.state.rate_limiter,
                                  settings.rate_limit_per_minute, InFlight(redis),
                                  settings.max_in_flight_per_client)
        ctx = app.state.ctx
        assert ctx.jobs is not None
        runner = JobRunner(ctx, ctx.jobs)
        tasks.append(asyncio.create_task(runner.loop(), name="background-jobs"))
        assert ctx.blobs is not None
        exports = ExportRunner(ctx, ctx.jobs, ctx.blobs,
                               lambda granted, patient: access_scope(ctx, granted, patient))
        tasks.append(asyncio.create_task(exports.loop(), name="export-jobs"))
        tasks.append(asyncio.create_task(sweep_forever(
            ctx.blobs, PgBlobReferences(pool).referenced, settings.blob_orphan_grace_seconds,
            settings.blob_sweep_interval_seconds), name="blob-sweep"))
        app.state.openapi = openapi.openapi_provider(ROUTER.routes, ctx, version=__version__)
        # The definitions, registry and validator live as long as the process: keep them
        # out of the cyclic collector, whose full passes would otherwise walk them all
        # again (tens of ms each, paid by whichever request triggers one).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if app.state.auditor is not None:
                await app.state.auditor.close()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if redis is not None:
                await redis.close()
            await ctx.blobs.close()
            if replica is not None:
                await replica.pool.close()
            await pool.close()
            await auth_server.close()

    async def fhir_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FhirError)
        return error_response(request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the route's methods (a set, in no order)
            allowed = {m.strip() for m in headers.get("Allow", "").split(",") if m.strip()}
            headers["Allow"] = ", ".join(sorted(allowed))
            err: FhirError = MethodNotAllowed(
                f"{request.method} is not supported on {request.url.path}", headers=headers)
        elif exc.status_code == 404:
            err = NotFound(f"no route for {request.url.path}")
        else:
            err = FhirError(str(exc.detail), status=exc.status_code, code="processing",
                            headers=headers)
        return error_response(request, err)

    async def unexpected(request: Request, exc: Exception) -> Response:
        # The access-log middleware already logged the traceback with the route template.
        response = error_response(request, FhirError("internal server error"))
        if rid := request_id_from_scope(request.scope):
            response.headers["X-Request-ID"] = rid
        return response

    app: Starlette  # the lambdas below run after it is built
    # Every FHIR interaction goes through the router (its table is api/routes.py); the
    # other routes are the operators' and the documentation's.
    fhir = FhirApp(ROUTER, lambda: app.state.ctx, lambda: app.state.guards,
                   lambda: getattr(app.state, "auditor", None))
    async def smart_configuration(request: Request) -> Response:
        if settings.auth_mode != "smart":
            raise NotFound("authorization is off (AUTH_MODE=off): there is nothing to "
                           "discover")
        base = settings.fhir_base_url or request_base(request.scope, request.headers)
        return JSONResponse(discovery.smart_configuration(base),
                            headers={"Cache-Control": "public, max-age=3600"})

    routes: list[BaseRoute] = [Route("/fhir/.well-known/smart-configuration",
                                     smart_configuration, methods=["GET"]),
                               Route("/fhir{rest:fhirpath}", fhir, name="fhir"),
                               metrics_route(lambda: app.state.pool), *operator.ROUTES,
                               *docs.docs_routes(lambda: app.state.openapi),
                               *auth_server.routes]
    middleware = [Middleware(ObservabilityMiddleware,
                             resource_types=lambda: app.state.ctx.resource_types)]
    if not settings.fhir_base_url:  # links from the Host header: only allowed ones
        middleware.append(Middleware(TrustedHosts, allowed=settings.allowed_host_list))
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
    middleware.append(Middleware(Gzip, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=5,
                                 identity_paths=("/fhir/Binary/",)))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={
        FhirError: fhir_error,
        StarletteHTTPException: http_error,
        Exception: unexpected,
    })
    return app


def read_replica(settings: Settings, primary: FhirPool,
                 redis: RedisClient | None) -> Replica | None:
    """The read replica of ``DATABASE_READ_URL`` (its pool not yet opened), or None."""
    if not settings.database_read_url:
        return None
    return Replica(make_pool(settings, replica=True), primary,
                   settings.read_replica_max_lag_seconds,
                   RecentWrites(settings.read_your_writes_seconds, redis),
                   report=count_read, report_lag=set_replica_lag)


def app_factory() -> Starlette:
    """Entry point for ``uvicorn --factory``: settings from the environment."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
