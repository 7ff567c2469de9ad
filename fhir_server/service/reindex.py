"""``$reindex`` as a resumable background job, and API-defined SearchParameters.

A reindex job walks current resources by rid in batches, recomputing their index rows
with the registry of the moment; its cursor is stored with each batch, so a job whose
worker died is taken over (after its lease expires) where it stopped. When it finishes,
the SearchParameters it was building become searchable. One job per scope (every
type, or one type) is queued or running at a time: asking again answers with it. A
cancelled job's worker stops at the end of the batch it is in.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_server.errors import Conflict
from fhir_server.search.registry import Status
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import Job, JobStart, JobStore
from fhir_server.service.search_parameters import expressions, refusal

log = logging.getLogger(__name__)

KIND = "reindex"
#: the scope of a reindex of every type (one of a single type is named by the type)
SYSTEM_SCOPE = "system"
BATCH = 500
LEASE_SECONDS = 60.0


@dataclass
class JobRunner:
    """Runs reindex jobs and keeps the registry's custom parameters current."""

    ctx: ServiceContext
    jobs: JobStore
    poll_seconds: float = 1.0
    #: resources per batch: a cancelled job stops at the end of the batch it is in
    batch: int = BATCH
    _version: tuple[Any, ...] | None = None
    #: the expressions of the stored SearchParameters -> why they are refused (or None)
    _verdicts: dict[tuple[str, ...], str | None] = field(default_factory=dict)

    async def refresh_registry(self) -> None:
        """Reload API-defined SearchParameters when they (or their states) changed."""
        version = await self.jobs.custom_version()
        if version == self._version:
            return
        admitted: list[tuple[dict[str, Any], Status]] = []
        verdicts: dict[tuple[str, ...], str | None] = {}
        for resource, status in await self.jobs.custom_parameters():
            # parsing is not free: expressions seen at the last refresh are not checked again
            key = tuple(e for _, e in expressions(resource))
            why = verdicts[key] = (self._verdicts[key] if key in self._verdicts
                                   else refusal(self.ctx.settings, resource))
            if why is None:
                admitted.append((resource, "active" if status == "active" else "building"))
            else:
                log.warning("SearchParameter %s is ignored: %s", resource.get("url"), why)
        refused = self.ctx.search.registry.set_custom(admitted)
        for url in refused:
            log.warning("SearchParameter %s is ignored: it redefines a shipped parameter "
                        "or its expression cannot be compiled", url)
        self._version = version
        self._verdicts = verdicts

    async def run_one(self) -> bool:
        """Claim and run one job to its end; False when there was none."""
        job = await self.jobs.claim(KIND, LEASE_SECONDS)
        if job is None:
            return False
        try:
            await self._run(job)
        except Exception as exc:  # a failed job must not kill the runner
            log.exception("reindex job %s failed", job.id)
            await self.jobs.finish(job.id, "failed", str(exc)[:1000])
        return True

    async def _run(self, job: Job) -> None:
        await self.refresh_registry()
        types = job.params.get("types")
        # the bases the job was asked through: references to them stay local
        bases = [b for b in job.params.get("bases", []) if isinstance(b, str)]
        cursor = job.cursor
        indexer = self.ctx.search.indexer
        while True:
            batch = await self.jobs.batch(cursor, types, self.batch)
            if not batch:
                break
            rows = [(rid, indexer.rows(orjson.loads(content), bases))
                    for rid, content in batch]
            cursor = batch[-1][0]
            if not await self.jobs.write_batch(job.id, rows, cursor, LEASE_SECONDS):
                log.info("reindex job %s was cancelled or taken over", job.id)
                return
            await asyncio.sleep(0)  # let requests run between batches
        await self.jobs.finish(job.id, "done")
        log.info("reindex job %s done", job.id)

    async def loop(self) -> None:
        """Forever: refresh the registry, run queued jobs, sleep a little."""
        while True:
            try:
                await self.refresh_registry()
                while await self.run_one():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away; try again later
                log.warning("background jobs: database unavailable", exc_info=True)
            await asyncio.sleep(self.poll_seconds)


async def start(ctx: ServiceContext, jobs: JobStore, resource_type: str | None) -> JobStart:
    """Queue a reindex of one type (or every type), or find the one already queued or
    running for it: one job per scope at a time, whoever asks and however often.

    Conflict when the active job is running and cannot build a SearchParameter stored
    after it started (it would stay unsearchable while the answer says all is well).
    """
    types = None if resource_type is None else [resource_type]
    if resource_type is not None:
        ctx.check_type(resource_type)
    building = sorted({p.url for t in ([resource_type] if resource_type else
                                       ctx.search.registry.resource_types)
                       for p in ctx.search.registry.params(t).values()
                       if p.status == "building" and p.url})
    started = await jobs.start(KIND, resource_type or SYSTEM_SCOPE,
                               {"types": types, "bases": list(ctx.bases)}, types, building)
    if started.unbuilt:
        job = started.job.id
        raise Conflict(
            f"$reindex job {job} of {resource_type or 'every type'} is running and does "
            f"not build {', '.join(started.unbuilt)} (stored after it started): start "
            f"$reindex again when it has finished, or cancel it (DELETE _jobs/{job}) "
            "and start again")
    return started
