"""Operations: ``$reindex`` (system and per type), the status of background jobs and
their cancellation."""

from __future__ import annotations

from typing import Any

from fhir_server.api import export
from fhir_server.api.headers import instant
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.errors import Conflict, Forbidden, NotFound, ServiceUnavailable
from fhir_server.service import export as export_service
from fhir_server.service import reindex
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import Job, JobStore


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


def _jobs(ctx: ServiceContext) -> JobStore:
    if ctx.jobs is None:
        raise ServiceUnavailable("background jobs are not available here")
    return ctx.jobs


async def _start(ctx: ServiceContext, resource_type: str | None) -> FhirResponse:
    # A job already active for the scope is answered like a new one (as HAPI answers a
    # repeated bulk export): the client follows its Content-Location either way.
    job = (await reindex.start(ctx, _jobs(ctx), resource_type)).job
    return FhirResponse(202, _parameters(job),
                        headers={"Content-Location": f"{ctx.base_url}/_jobs/{job.id}"})


async def reindex_system(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """Rebuild the search index of every resource, in the background (202)."""
    return await _start(ctx, None)


async def reindex_type(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """Rebuild the search index of one resource type, in the background (202)."""
    return await _start(ctx, request.params["resource_type"])


def _job_id(request: FhirRequest) -> int:
    """The path's job id; NotFound when it cannot name one."""
    job_id = request.params["job_id"]
    if not (job_id.isascii() and job_id.isdigit() and len(job_id) < 19):
        raise NotFound(f"there is no job {job_id}")
    return int(job_id)


def _require_admin(request: FhirRequest, job: Job) -> None:
    """The server's own jobs ($reindex) are the admin's; an export is its client's
    (``api.export`` checks that)."""
    scope = request.context.scope
    if scope is not None and not scope.admin:
        raise Forbidden(f"job {job.id} ({job.kind}) needs the admin scope (system/*.*)")


async def job_status(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """A background job's progress, as Parameters (an export's: as the Bulk Data IG
    answers its status URL)."""
    job = await _jobs(ctx).get(_job_id(request))
    if job is None:
        raise NotFound(f"there is no job {request.params['job_id']}")
    if job.kind == export_service.KIND:
        return export.status(request, ctx, job)
    _require_admin(request, job)
    return FhirResponse(200, _parameters(job))


async def cancel_job(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """Cancel a queued or running job: 202 with its status, ``cancelled`` (as the Bulk
    Data IG answers a DELETE of a status URL; again for one already cancelled). A job
    that has ended otherwise cannot be (but a finished export): 409."""
    jobs = _jobs(ctx)
    found = await jobs.get(_job_id(request))
    if found is None:
        raise NotFound(f"there is no job {request.params['job_id']}")
    if found.kind == export_service.KIND:
        export.check_access(request, found)
    else:
        _require_admin(request, found)
    # A finished export is cancelled too: the client is done with its files (the IG),
    # which the blob sweep then removes; its status URL answers 404 from then on.
    job = await jobs.cancel(found.id, done_too=found.kind == export_service.KIND)
    if job is None:
        raise NotFound(f"there is no job {request.params['job_id']}")
    if job.status != "cancelled":
        raise Conflict(f"job {job.id} has already ended ({job.status}): there is nothing "
                       "to cancel")
    return FhirResponse(202, _parameters(job))
