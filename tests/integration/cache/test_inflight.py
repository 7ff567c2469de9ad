"""Requests in flight counted in the shared Redis: replicas share the count, slots of a
crashed worker lapse, an unreachable Redis falls back to the in-process count."""

from __future__ import annotations

import asyncio

import pytest

from fhir_server.cache.inflight import InFlight
from fhir_server.cache.redis_client import RedisClient

from .support import free_port, namespace, redis_url_or_skip

REDIS_URL = redis_url_or_skip()
pytestmark = pytest.mark.redis


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_replicas_share_the_count_and_unreleased_slots_lapse() -> None:
    async def main() -> None:
        clock = Clock(1_000_000.0)
        ns = namespace()
        one, two = RedisClient(REDIS_URL, namespace=ns), RedisClient(REDIS_URL, namespace=ns)
        try:
            a = InFlight(one, ttl_seconds=60, clock=clock)
            b = InFlight(two, ttl_seconds=60, clock=clock)
            held = await a.acquire("client:x", 2)
            crashed = await b.acquire("client:x", 2)  # never released: its worker died
            assert held is not None and crashed is not None and held.member is not None
            assert await a.acquire("client:x", 2) is None
            assert await b.acquire("client:y", 2) is not None
            await held.release()
            again = await b.acquire("client:x", 2)
            assert again is not None
            assert await a.acquire("client:x", 2) is None
            clock.now += 61  # the crashed worker's slot (and the unreleased one) lapse
            assert await a.acquire("client:x", 2) is not None
            assert not a._local and not b._local  # all of it counted in Redis
        finally:
            await one.close()
            await two.close()

    asyncio.run(main())


def test_redis_unreachable_counts_in_process() -> None:
    async def main() -> None:
        client = RedisClient(f"redis://127.0.0.1:{free_port()}/0", namespace=namespace())
        try:
            in_flight = InFlight(client)
            slot = await in_flight.acquire("ip:a", 1)
            assert slot is not None and slot.member is None
            assert await in_flight.acquire("ip:a", 1) is None
            await slot.release()
            assert await in_flight.acquire("ip:a", 1) is not None
        finally:
            await client.close()

    asyncio.run(main())
