"""One import worker process: its own event loop, pool and ServiceContext.

The parent starts workers with the ``spawn`` method (no inherited event loop, pool or
embedded-database handle) and talks to them through two queues:

- tasks: :data:`~fhir_server.importer.files.WorkItem` objects, then one ``None`` per
  lane to stop;
- results: ``("ready", worker)``, ``("result", ItemResult)``, ``("fatal", worker,
  message)`` and finally ``("exit", worker)``.

Inside a worker, ``concurrency`` lanes each take an item and run it, so that one
lane's database round trips overlap another's Python work.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from fhir_server.importer.deferred import deferred
from fhir_server.importer.files import WorkItem
from fhir_server.importer.process import ItemResult, Problem, process
from fhir_server.importer.session import BufferedRepository
from fhir_server.logs import configure_logging
from fhir_server.runtime import build_context
from fhir_server.service.reindex import JobRunner
from fhir_server.settings import Settings
from fhir_server.storage.jobs import PgJobs
from fhir_server.storage.pool import make_pool

log = logging.getLogger(__name__)

#: Seconds between checks for SearchParameters stored meanwhile (the server's job
#: runner checks every second; the index rows of later writes then include them).
REGISTRY_REFRESH_SECONDS = 2.0
#: Allocations between young-generation collections (Python's default is 700).
GC_THRESHOLD = 50_000


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs; must pickle (it crosses the process boundary)."""

    index: int
    settings: Settings
    concurrency: int
    base_url: str


def main(config: WorkerConfig, tasks: Any, results: Any) -> None:
    """Process entry point: run until the stop markers, then report ``exit``."""
    configure_logging(config.settings)
    try:
        asyncio.run(_serve(config, tasks, results))
    except BaseException as exc:  # reported to the parent, which ends the run
        log.exception("import worker %s failed", config.index)
        results.put(("fatal", config.index, f"{type(exc).__name__}: {exc}"))
    finally:
        results.put(("exit", config.index))


async def _serve(config: WorkerConfig, tasks: Any, results: Any) -> None:
    # One connection per lane, plus one for registry refreshes.
    settings = replace(config.settings, db_pool_min=1, db_pool_max=config.concurrency + 1)
    pool = make_pool(settings)
    await pool.open(wait=True, timeout=30)
    try:
        ctx = build_context(settings, pool)
        runner = JobRunner(ctx, PgJobs(pool))
        await runner.refresh_registry()
        # The definitions, validator and registry are millions of long-lived objects
        # that every full collection would walk again, while an import allocates
        # containers by the million: freeze the former, collect the latter less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, 20, 100)
        repo = BufferedRepository(pool, ctx.repository, settings.search_timeout_ms)
        ictx = replace(ctx, repository=repo, search=replace(
            ctx.search, indexer=deferred(ctx.search.indexer)))
        results.put(("ready", config.index))
        loop = asyncio.get_running_loop()
        refreshed = time.monotonic()

        async def lane(executor: ThreadPoolExecutor) -> None:
            nonlocal refreshed
            while True:
                # A blocking queue read, off the event loop.
                item: WorkItem | None = await loop.run_in_executor(executor, tasks.get)
                if item is None:
                    return
                if time.monotonic() - refreshed > REGISTRY_REFRESH_SECONDS:
                    refreshed = time.monotonic()
                    await runner.refresh_registry()
                results.put(("result", await _run(ictx, repo, item, config.base_url)))

        with ThreadPoolExecutor(config.concurrency, "import-queue") as executor:
            await asyncio.gather(*(lane(executor) for _ in range(config.concurrency)))
    finally:
        await pool.close()


async def _run(ctx: Any, repo: BufferedRepository, item: WorkItem,
               base_url: str) -> ItemResult:
    """One item; an unexpected exception fails that item only."""
    try:
        return await process(ctx, repo, item, base_url)
    except Exception as exc:
        log.exception("import of %s failed unexpectedly", item.path)
        return ItemResult(item.item_id, item.path, resources=item.estimate,
                          problems=[Problem(item.path, f"{type(exc).__name__}: {exc}",
                                            "internal error")])
