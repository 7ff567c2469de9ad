"""Redis going away: reads and writes keep working from PostgreSQL, quickly, without errors."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from .harness import patient, replica
from .support import Proxy, free_port, namespace, redis_server, redis_url_or_skip

redis_url_or_skip()  # the module needs redis-server and the shared Redis's tooling
pytestmark = pytest.mark.redis
T = TypeVar("T")

#: one operation while Redis is unreachable may cost at most this (the client's timeout
#: is 0.1 s, a call is cut at 0.3 s; PostgreSQL answers in milliseconds)
BOUND_S = 0.6


def new_id() -> str:
    return f"down-{uuid.uuid4().hex[:12]}"


async def bounded(op: Awaitable[T]) -> T:
    started = time.perf_counter()
    result = await op
    assert time.perf_counter() - started < BOUND_S
    return result


def test_unreachable_from_the_start(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    rid = new_id()
    url = f"redis://127.0.0.1:{free_port()}/0"

    async def main() -> None:
        async with replica(pg_url, url, namespace()) as rep:
            started = time.perf_counter()
            for i in range(20):
                written = await bounded(rep.cached.write("Patient", rid, patient(rid, n=i),
                                                         "PUT"))
                current = await bounded(rep.cached.read("Patient", rid))
                assert current == written.version
                async with rep.cached.transaction() as tx:
                    await tx.write("Patient", rid, patient(rid, n=i, tx=True), "PUT")
            assert time.perf_counter() - started < 5
            assert rep.spy.reads == 20

    with caplog.at_level(logging.INFO, logger="fhir_server.cache"):
        asyncio.run(main())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one line per outage, not one per request


def test_killed_mid_test_then_back(pg_url: str) -> None:
    rid = new_id()

    async def main() -> None:
        with redis_server() as server:
            async with replica(pg_url, server.url, namespace(), backoff=0.5) as rep:
                await rep.cached.write("Patient", rid, patient(rid, n=0), "PUT")
                await rep.cached.read("Patient", rid)
                assert (await rep.cached.read("Patient", rid)) is not None
                assert rep.spy.reads == 1
                server.kill()
                for i in range(1, 6):
                    written = await bounded(
                        rep.cached.write("Patient", rid, patient(rid, n=i), "PUT"))
                    assert written.version is not None and written.version.version_id == i + 1
                    seen = await bounded(rep.cached.read("Patient", rid))
                    assert seen == written.version  # read-your-writes from PostgreSQL
                server.start()  # same port, empty
                await asyncio.sleep(0.6)  # the backoff
                reads = rep.spy.reads
                for _ in range(3):
                    seen = await rep.cached.read("Patient", rid)
                    assert seen is not None and seen.version_id == 6
                assert rep.spy.reads == reads + 1  # cached again after the first

    asyncio.run(main())


def test_partition_of_one_replica(pg_url: str) -> None:
    """Replica A cannot reach Redis while it writes; B can, and has v1 cached.

    This is the one case the design cannot prevent: A's BEGIN and END both failed, so
    B keeps its entry until A reaches Redis again (or the TTL ends). A replays its END on
    its first use of Redis after the backoff, which is what this test checks.
    """
    rid = new_id()
    ns = namespace()

    async def main() -> None:
        with redis_server() as server:
            proxy = Proxy(server.port)
            await proxy.start()
            async with replica(pg_url, proxy.url, ns, backoff=0.5) as a, \
                    replica(pg_url, server.url, ns, backoff=0.5) as b:
                await a.cached.write("Patient", rid, patient(rid, n=0), "PUT")
                assert (await b.cached.read("Patient", rid)).version_id == 1  # type: ignore[union-attr]
                await proxy.cut()
                await bounded(a.cached.write("Patient", rid, patient(rid, n=1), "PUT"))
                mine = await bounded(a.cached.read("Patient", rid))
                assert mine is not None and mine.version_id == 2  # A bypasses the cache
                stale = await b.cached.read("Patient", rid)
                assert stale is not None and stale.version_id == 1  # the documented window
                await proxy.start()
                await asyncio.sleep(0.6)
                await a.cached.read("Patient", rid)  # A's first use replays its END
                fresh = await b.cached.read("Patient", rid)
                assert fresh is not None and fresh.version_id == 2

    asyncio.run(main())


def test_hanging_redis_costs_one_timeout(pg_url: str) -> None:
    """A frozen Redis (no answers at all) costs one short timeout, then nothing."""
    rid = new_id()

    async def main() -> None:
        with redis_server() as server:
            async with replica(pg_url, server.url, namespace(), backoff=5.0) as rep:
                await rep.cached.write("Patient", rid, patient(rid, n=0), "PUT")
                await rep.cached.read("Patient", rid)
                server.pause()
                durations = []
                for i in range(1, 11):
                    started = time.perf_counter()
                    written = await rep.cached.write("Patient", rid, patient(rid, n=i), "PUT")
                    seen = await rep.cached.read("Patient", rid)
                    durations.append(time.perf_counter() - started)
                    assert seen == written.version
                assert durations[0] < BOUND_S
                assert sum(durations[1:]) < 0.5  # the backoff: no more timeouts
                server.resume()

    asyncio.run(main())
