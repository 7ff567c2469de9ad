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


def _json(payload: dict[str, object], status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


async def health(request: Request) -> Response:
    """Liveness: the process answers; never touches the database."""
    return _json({"status": "ok", "timestamp": _now()})


async def ready(request: Request) -> Response:
    """Readiness: a database round trip and migrations up to date, else 503; with a
    read replica, its state and lag too (a replica down leaves the server ready)."""
    ctx: ServiceContext = request.app.state.ctx
    state = await ctx.repository.readiness()
    ok = state.database and state.migrations in ("up to date", "ahead, compatible")
    payload: dict[str, object] = {
        "status": "ready" if ok else "not ready",
        "database": "connected" if state.database else "disconnected",
        "migrations": state.migrations,
    }
    if state.replica is not None:
        # Reported, never deciding: reads fall back to the primary without the replica.
        payload["replica"] = state.replica
        payload["replicaLagSeconds"] = (None if state.replica_lag_seconds is None
                                        else round(state.replica_lag_seconds, 3))
    payload["timestamp"] = _now()
    return _json(payload, 200 if ok else 503)


#: The operator routes.
ROUTES = [Route("/api/v1/health", health, methods=["GET"], name="health"),
          Route("/api/v1/ready", ready, methods=["GET"], name="ready")]
