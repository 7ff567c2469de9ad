"""Operations: ``$reindex`` (system and per type) and the status of background jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_server.api.deps import base_url, context
from fhir_server.errors import NotFound
from fhir_server.http.headers import instant
from fhir_server.http.responses import Negotiated, fhir_response
from fhir_server.service import reindex
from fhir_server.service.repository import Job

router = APIRouter()


def _parameters(job: Job) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = [
        {"name": "job", "valueString": str(job.id)},
        {"name": "kind", "valueCode": job.kind},
        {"name": "status", "valueCode": job.status},
        {"name": "processed", "valueInteger": job.processed},
        {"name": "created", "valueInstant": instant(job.created_at)},
        {"name": "updated", "valueInstant": instant(job.updated_at)},
    ]
    if job.total is not None:
        parameter.append({"name": "total", "valueInteger": job.total})
    if job.error:
        parameter.append({"name": "error", "valueString": job.error})
    return {"resourceType": "Parameters", "parameter": parameter}


async def _start(request: Request, resource_type: str | None) -> Response:
    neg = Negotiated.from_request(request)
    job = await reindex.start(context(request), request.app.state.jobs, resource_type)
    status_url = f"{base_url(request)}/_jobs/{job.id}"
    return fhir_response(_parameters(job), neg, 202, {"Content-Location": status_url})


@router.post("/fhir/$reindex")
async def reindex_system(request: Request) -> Response:
    """Rebuild the search index of every resource, in the background (202)."""
    return await _start(request, None)


@router.post("/fhir/{resource_type}/$reindex")
async def reindex_type(resource_type: str, request: Request) -> Response:
    """Rebuild the search index of one resource type, in the background (202)."""
    return await _start(request, resource_type)


@router.get("/fhir/_jobs/{job_id}")
async def job_status(job_id: str, request: Request) -> Response:
    """A background job's progress, as Parameters."""
    neg = Negotiated.from_request(request)
    job = await request.app.state.jobs.get(int(job_id)) if job_id.isdigit() else None
    if job is None:
        raise NotFound(f"there is no job {job_id}")
    return fhir_response(_parameters(job), neg)
