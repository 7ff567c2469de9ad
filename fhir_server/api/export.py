"""Bulk Data ``$export`` over the wire: kick-off at the system, Patient and Group level
(GET with a query, POST with a Parameters body), the status of an export job (202 with
``X-Progress`` while it runs, 200 with the manifest when done) and its files."""

from __future__ import annotations

from typing import Any

from fhir_server.api.common import resource_body
from fhir_server.api.headers import instant
from fhir_server.api.messages import FhirRequest, FhirResponse, RawContent
from fhir_server.errors import BadRequest, FhirError, NotFound, ServiceUnavailable
from fhir_server.service import export
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import Job, JobStore

#: seconds a client is asked to wait between polls of a running export
RETRY_AFTER_SECONDS = 2


def _jobs(ctx: ServiceContext) -> JobStore:
    if ctx.jobs is None:
        raise ServiceUnavailable("background jobs are not available here")
    return ctx.jobs


def _pairs(request: FhirRequest, ctx: ServiceContext) -> list[tuple[str, str]]:
    """The kick-off's (name, value) pairs: the query's, or a Parameters body's."""
    if request.method != "POST":
        return list(request.pairs)
    resource = resource_body(request, ctx)[0]
    if not isinstance(resource, dict) or resource.get("resourceType") != "Parameters":
        raise BadRequest("POST $export takes a Parameters resource")
    pairs: list[tuple[str, str]] = []
    for parameter in resource.get("parameter") or []:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        value = next((v for k, v in parameter.items() if k.startswith("value")), None) \
            if isinstance(parameter, dict) else None
        if not isinstance(name, str) or not isinstance(value, str):
            raise BadRequest("each $export parameter needs a name and a string value")
        pairs.append((name, value))
    return pairs


async def _kick_off(request: FhirRequest, ctx: ServiceContext, level: str,
                    group_id: str | None = None) -> FhirResponse:
    export.wants_async(request.header("prefer"))
    scope = request.context.scope
    asked = export.parse_request(ctx, scope, level, group_id, _pairs(request, ctx))
    caller = request.context.caller
    granted = None if scope is None or caller is None else " ".join(caller.scopes)
    url = f"{ctx.base_url}/{request.path}" + (f"?{request.query}" if request.query else "")
    job = await export.start(ctx, _jobs(ctx), asked, url,
                             caller.client_id if caller else None, granted,
                             caller.patient if caller else None)
    return FhirResponse(202, headers={"Content-Location": f"{ctx.base_url}/_jobs/{job.id}"},
                        outcome=_informational(f"export job {job.id} is {job.status}"))


def _informational(text: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational",
                       "diagnostics": text}]}


async def export_system(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """[base]/$export: every resource the caller may read."""
    return await _kick_off(request, ctx, "system")


async def export_patient(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """[base]/Patient/$export: every patient's compartment."""
    return await _kick_off(request, ctx, "patient")


async def export_group(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """[base]/Group/[id]/$export: the compartments of the Group's member patients."""
    return await _kick_off(request, ctx, "group", request.params["id"])


def check_access(request: FhirRequest, job: Job) -> None:
    """NotFound (as for a job that does not exist) unless the caller asked for it."""
    caller = request.context.caller
    if not export.may_see(job, request.context.scope, caller.client_id if caller else None):
        raise NotFound(f"there is no job {job.id}")


def status(request: FhirRequest, ctx: ServiceContext, job: Job) -> FhirResponse:
    """An export job's status: 202 while it runs, the manifest when done, 404 once
    cancelled (the IG's answer), 500 with the reason when it failed."""
    check_access(request, job)
    if job.status in ("queued", "running"):
        progress = (f"{job.status}: {job.processed} of about {job.total} resources"
                    if job.total is not None else f"{job.status}: {job.processed} resources")
        return FhirResponse(202, headers={"X-Progress": progress,
                                          "Retry-After": str(RETRY_AFTER_SECONDS)},
                            outcome=_informational(progress))
    if job.status == "cancelled":
        raise NotFound(f"export job {job.id} was cancelled")
    if job.status == "failed":
        raise FhirError(f"export job {job.id} failed: {job.error or 'unknown error'}",
                        status=500, code="exception")
    seconds, store = ctx.settings.export_presigned_url_seconds, ctx.blobs
    presigned = (None if seconds <= 0 or store is None else
                 lambda key: store.presigned_url(key, seconds, export.NDJSON))
    body = export.manifest(job, ctx.base_url, instant(export.transaction_time(job)),
                           ctx.settings.auth_mode == "smart", presigned)
    return FhirResponse(200, body)


async def export_file(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """One NDJSON file of a finished export, streamed from the blob store."""
    job_id = request.params["job_id"]
    job = await _jobs(ctx).get(int(job_id)) if job_id.isascii() and job_id.isdigit() \
        and len(job_id) < 19 else None
    if job is None or job.kind != export.KIND:
        raise NotFound(f"there is no export job {job_id}")
    check_access(request, job)
    name = request.params["file"]
    found = next((o for o in job.params.get("outputs", []) if o.get("name") == name), None)
    if found is None or job.status == "cancelled" or ctx.blobs is None:
        raise NotFound(f"export job {job.id} has no file {name}")
    chunks = await ctx.blobs.open(str(found["key"]))
    return FhirResponse(200, raw=RawContent(export.NDJSON, chunks, int(found["size"])))
