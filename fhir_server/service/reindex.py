"""``$reindex`` as a resumable background job, and API-defined SearchParameters.

A reindex job walks current resources by rid in batches, recomputing their index rows
with the registry of the moment; its cursor is stored with each batch, so a job whose
worker died is taken over (after its lease expires) where it stopped. When it finishes,
the SearchParameters it was building become searchable.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import Job, JobStore

log = logging.getLogger(__name__)

KIND = "reindex"
BATCH = 500
LEASE_SECONDS = 60.0


@dataclass
class JobRunner:
    """Runs reindex jobs and keeps the registry's custom parameters current."""

    ctx: ServiceContext
    jobs: JobStore
    poll_seconds: float = 1.0
    _version: tuple[Any, ...] | None = None

    async def refresh_registry(self) -> None:
        """Reload API-defined SearchParameters when they (or their states) changed."""
        version = await self.jobs.custom_version()
        if version == self._version:
            return
        refused = self.ctx.search.registry.set_custom(
            [(res, "active" if status == "active" else "building")
             for res, status in await self.jobs.custom_parameters()])
        for url in refused:
            log.warning("SearchParameter %s is ignored: it redefines a shipped parameter "
                        "or its expression cannot be compiled", url)
        self._version = version

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
            batch = await self.jobs.batch(cursor, types, BATCH)
            if not batch:
                break
            rows = [(rid, indexer.rows(orjson.loads(content), bases))
                    for rid, content in batch]
            cursor = batch[-1][0]
            if not await self.jobs.write_batch(job.id, rows, cursor, LEASE_SECONDS):
                log.info("reindex job %s was taken away", job.id)
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


async def start(ctx: ServiceContext, jobs: JobStore, resource_type: str | None) -> Job:
    """Queue a reindex of one type (or every type); returns the job."""
    types = None if resource_type is None else [resource_type]
    if resource_type is not None:
        ctx.check_type(resource_type)
    building = sorted({p.url for t in ([resource_type] if resource_type else
                                       ctx.search.registry.resource_types)
                       for p in ctx.search.registry.params(t).values()
                       if p.status == "building" and p.url})
    total = await jobs.count(types)
    return await jobs.create(KIND, {"types": types, "bases": list(ctx.bases)}, total,
                             building)
