"""The ASGI application: lifespan (pool, definitions), routers and the one error handler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from fhir_server import __version__
from fhir_server.api import (
    docs,
    history,
    instance,
    metadata,
    operations,
    operator,
    search,
    type,
)
from fhir_server.definitions import Definitions
from fhir_server.errors import BadRequest, FhirError, MethodNotAllowed, NotFound
from fhir_server.http.responses import error_response
from fhir_server.logs import configure_logging
from fhir_server.paths import data_dir
from fhir_server.search.base import SearchContext
from fhir_server.search.compile import Compiler
from fhir_server.search.fhirpath import Extractor
from fhir_server.search.index import IndexBuilder
from fhir_server.search.kinds import index_types
from fhir_server.search.parse import Parser
from fhir_server.search.registry import Registry
from fhir_server.search.valuesets import ValueSets
from fhir_server.service.compartment import load_compartments
from fhir_server.service.context import SearchServices, ServiceContext
from fhir_server.service.reindex import JobRunner
from fhir_server.settings import Settings, load_settings
from fhir_server.storage.jobs import PgJobs
from fhir_server.storage.pool import make_pool
from fhir_server.storage.repository import PgRepository
from fhir_server.validation import Validator

log = logging.getLogger(__name__)


def build_search(settings: Settings, definitions: Definitions,
                 profiles: Path) -> SearchServices:
    """The search registry, parser, compiler and index builder."""
    registry = Registry.load(data_dir("search"), definitions.resource_types,
                             Extractor(definitions))
    registry.freeze_base()
    kinds = index_types()
    context = SearchContext(base_url=settings.fhir_base_url.rstrip("/"),
                            expand_valueset=ValueSets(profiles))
    return SearchServices(registry=registry, parser=Parser(registry),
                          compiler=Compiler(kinds, registry.get),
                          indexer=IndexBuilder(registry, kinds, context), context=context)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; connections are opened when its lifespan starts."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        profiles = data_dir("profiles")
        definitions = Definitions.load(profiles)
        validator = Validator.load(profiles, definitions=definitions)
        search = build_search(settings, definitions, profiles)
        pool = make_pool(settings)
        # Do not wait for connections: the process must come up (and answer liveness)
        # while the database is away; readiness reports it.
        await pool.open(wait=False)
        app.state.ctx = ServiceContext(
            settings=settings,
            repository=PgRepository(pool, data_dir("migrations"),
                                    settings.search_timeout_ms),
            validator=validator,
            resource_types=definitions.resource_types,
            definitions=definitions,
            search=search,
            compartments=load_compartments(data_dir("search")),
        )
        app.state.jobs = PgJobs(pool)
        runner = JobRunner(app.state.ctx, app.state.jobs)
        jobs_task = asyncio.create_task(runner.loop(), name="background-jobs")
        app.state.capability_dir = data_dir("capability")
        app.state.capability = None
        app.state.openapi = docs.openapi_provider(
            sorted(definitions.resource_types), version=__version__,
            search_params={t: [(c, p.type, p.description[:200])
                               for c, p in sorted(search.registry.params(t).items())]
                           for t in definitions.resource_types})
        try:
            yield
        finally:
            jobs_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await jobs_task
            await pool.close()

    app = FastAPI(title="FHIR R4 server", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)

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
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, FhirError("internal server error"))

    app.add_exception_handler(FhirError, fhir_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)

    # Order matters: fixed paths (metadata, _history, _search) before {resource_type}.
    for router in (operator.router, metadata.router, operations.router, history.router,
                   search.router, type.router, instance.router):
        app.include_router(router)
    app.include_router(docs.docs_router(lambda: app.state.openapi()))
    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory``: settings from the environment."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
