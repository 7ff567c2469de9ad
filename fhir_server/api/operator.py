"""Operator endpoints: liveness and readiness, in the runbook's shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_server.api.deps import context

router = APIRouter()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(payload: dict[str, str], status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


@router.get("/api/v1/health")
async def health() -> Response:
    """Liveness: the process answers; never touches the database."""
    return _json({"status": "ok", "timestamp": _now()})


@router.get("/api/v1/ready")
async def ready(request: Request) -> Response:
    """Readiness: a database round trip and migrations up to date, else 503."""
    state = await context(request).repository.readiness()
    ok = state.database and state.migrations in ("up to date", "ahead, compatible")
    return _json({
        "status": "ready" if ok else "not ready",
        "database": "connected" if state.database else "disconnected",
        "migrations": state.migrations,
        "timestamp": _now(),
    }, 200 if ok else 503)
