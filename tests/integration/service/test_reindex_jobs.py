"""$reindex jobs against real PostgreSQL: one active job per scope (the database decides
between concurrent starts), cancellation of a queued or running job, and a running job's
worker stopping at its next batch once cancelled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fhir_server.errors import Conflict
from fhir_server.paths import data_dir
from fhir_server.runtime import build_context
from fhir_server.service import reindex
from fhir_server.service.context import ServiceContext
from fhir_server.service.reindex import JobRunner
from fhir_server.settings import load_settings
from fhir_server.storage.admin import apply_migrations
from fhir_server.storage.jobs import PgJobs
from fhir_server.storage.pool import make_pool
from tests.conftest import scratch_database

RESOURCES = 300


class World:
    """A scratch database (no server claims its jobs), its context and event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        settings = load_settings({"DATABASE_URL": url, "DB_POOL_MAX": "4"}, env_file=None)
        self.pools = [make_pool(settings), make_pool(settings)]
        for pool in self.pools:
            self.run(pool.open(wait=True))
        self.ctx: ServiceContext = build_context(settings, self.pools[0])
        self.jobs = [PgJobs(pool) for pool in self.pools]

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def close(self) -> None:
        for pool in self.pools:
            self.run(pool.close())
        self.loop.close()

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[World]:
    with scratch_database(database_url, "jobs") as url:
        apply_migrations(url, data_dir("migrations"))
        world = World(url)
        try:
            for n in range(RESOURCES):
                rid = f"b{n}"
                body = {"resourceType": "Basic", "id": rid, "code": {"text": f"c{n}"}}
                index = world.ctx.search.indexer.rows(body, ())
                world.run(world.ctx.repository.write(
                    "Basic", rid, f'{{"resourceType":"Basic","id":"{rid}",'
                    f'"code":{{"text":"c{n}"}}}}', "PUT", index=index))
            yield world
        finally:
            world.close()


@pytest.fixture(autouse=True)
def no_active_jobs(world: World) -> None:
    world.sql("UPDATE job SET status = 'cancelled' WHERE status IN ('queued', 'running')")


def test_a_second_start_answers_the_active_job(world: World) -> None:
    first = world.run(reindex.start(world.ctx, world.jobs[0], "Basic"))
    again = world.run(reindex.start(world.ctx, world.jobs[1], "Basic"))
    assert (first.created, again.created) == (True, False)
    assert again.job.id == first.job.id
    assert (first.job.status, first.job.total) == ("queued", RESOURCES)
    # another scope is another job
    system = world.run(reindex.start(world.ctx, world.jobs[0], None))
    assert system.created and system.job.id != first.job.id
    # once the first is cancelled, a start queues a new one
    cancelled = world.run(world.jobs[0].cancel(first.job.id))
    assert cancelled is not None and cancelled.status == "cancelled"
    third = world.run(reindex.start(world.ctx, world.jobs[0], "Basic"))
    assert third.created and third.job.id not in (first.job.id, system.job.id)


def test_racing_starts_leave_one_job(world: World) -> None:
    async def race() -> list[Any]:
        return list(await asyncio.gather(*(
            reindex.start(world.ctx, world.jobs[n % 2], "Basic") for n in range(12))))

    started = world.run(race())
    assert len({s.job.id for s in started}) == 1
    assert sum(s.created for s in started) == 1
    assert world.sql("SELECT count(*) FROM job WHERE kind = 'reindex' AND scope = 'Basic'"
                     " AND status IN ('queued', 'running')") == [(1,)]
    # the database itself refuses a second active job of the scope
    with pytest.raises(psycopg.errors.UniqueViolation):
        world.sql("INSERT INTO job (kind, scope) VALUES ('reindex', 'Basic')")


def test_a_queued_job_takes_new_parameters_a_running_one_refuses(world: World) -> None:
    jobs = world.jobs[0]
    queued = world.run(jobs.start("reindex", "Basic", {}, ["Basic"], ["http://x/one"]))
    joined = world.run(jobs.start("reindex", "Basic", {}, ["Basic"], ["http://x/two"]))
    assert (joined.job.id, joined.unbuilt) == (queued.job.id, ())
    assert world.sql("SELECT url FROM search_param_state WHERE job_id = %s ORDER BY url",
                     (queued.job.id,)) == [("http://x/one",), ("http://x/two",)]
    claimed = world.run(jobs.claim("reindex", 60))
    assert claimed is not None and claimed.id == queued.job.id
    late = world.run(jobs.start("reindex", "Basic", {}, ["Basic"],
                                ["http://x/one", "http://x/three"]))
    assert (late.job.id, late.created, late.unbuilt) == (queued.job.id, False,
                                                          ("http://x/three",))


def test_a_running_job_refuses_to_answer_for_a_parameter_it_does_not_build(
        world: World) -> None:
    jobs = world.jobs[0]
    world.run(jobs.start("reindex", "Basic", {}, ["Basic"], []))
    assert world.run(jobs.claim("reindex", 60)) is not None
    # a SearchParameter stored now: in the registry, building, but not by that job
    url = "http://example.org/sp/basic-late"
    text = ('{"resourceType":"SearchParameter","id":"basic-late","url":"' + url + '",'
            '"name":"Late","status":"active","description":"d","code":"late",'
            '"base":["Basic"],"type":"string","expression":"Basic.code.text"}')
    world.run(world.ctx.repository.write("SearchParameter", "basic-late", text, "PUT"))
    world.run(JobRunner(world.ctx, jobs).refresh_registry())
    param = world.ctx.search.registry.get("Basic", "late")
    assert param is not None and param.status == "building"
    with pytest.raises(Conflict) as caught:
        world.run(reindex.start(world.ctx, jobs, "Basic"))
    assert f"does not build {url} (stored after it started)" in caught.value.diagnostics


def test_cancel_stops_a_running_job_at_its_next_batch(world: World) -> None:
    jobs = world.jobs[0]
    started = world.run(reindex.start(world.ctx, jobs, "Basic"))
    runner = JobRunner(world.ctx, world.jobs[1], batch=2)

    async def cancel_while_running() -> tuple[float, int]:
        task = asyncio.create_task(runner.run_one())
        while True:
            job = await jobs.get(started.job.id)
            assert job is not None and job.status in ("queued", "running")
            if job.processed > 0:
                break
            await asyncio.sleep(0.005)
        cancelled = await jobs.cancel(started.job.id)
        assert cancelled is not None and cancelled.status == "cancelled"
        at = time.monotonic()
        assert await asyncio.wait_for(task, 5) is True
        return time.monotonic() - at, cancelled.processed

    took, processed_then = world.run(cancel_while_running())
    assert took < 1.0
    job = world.run(jobs.get(started.job.id))
    assert job is not None and job.status == "cancelled"
    assert 0 < job.processed <= processed_then + 2 < RESOURCES
    # finishing a cancelled job leaves it cancelled
    world.run(jobs.finish(job.id, "done"))
    again = world.run(jobs.get(job.id))
    assert again is not None and again.status == "cancelled"


def test_cancel_of_an_ended_or_unknown_job(world: World) -> None:
    jobs = world.jobs[0]
    started = world.run(reindex.start(world.ctx, jobs, "Basic"))
    assert world.run(JobRunner(world.ctx, jobs).run_one()) is True
    done = world.run(jobs.cancel(started.job.id))
    assert done is not None and (done.status, done.processed) == ("done", RESOURCES)
    assert world.run(jobs.cancel(999_999_999)) is None
