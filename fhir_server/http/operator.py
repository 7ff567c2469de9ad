"""Operator endpoints: liveness and readiness, in the runbook's shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_server.service.context import ServiceContext


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(payload: dict[str, str], status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


async def health(request: Request) -> Response:
    """Liveness: the process answers; never touches the database."""
    return _json({"status": "ok", "timestamp": _now()})


async def ready(request: Request) -> Response:
    """Readiness: a database round trip and migrations up to date, else 503."""
    ctx: ServiceContext = request.app.state.ctx
    state = await ctx.repository.readiness()
    ok = state.database and state.migrations in ("up to date", "ahead, compatible")
    return _json({
        "status": "ready" if ok else "not ready",
        "database": "connected" if state.database else "disconnected",
        "migrations": state.migrations,
        "timestamp": _now(),
    }, 200 if ok else 503)


#: The operator routes.
ROUTES = [Route("/api/v1/health", health, methods=["GET"], name="health"),
          Route("/api/v1/ready", ready, methods=["GET"], name="ready")]
