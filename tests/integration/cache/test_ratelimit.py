"""RateLimiter with the shared Redis (two "replicas" share counts) and in-process."""

from __future__ import annotations

import asyncio

import pytest

from fhir_server.cache.ratelimit import RateLimiter
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


async def exercise(a: RateLimiter, b: RateLimiter, clock: Clock) -> None:
    """10 per 60 s: alternate between limiters a and b, then let the window slide."""
    results = [await (a if i % 2 else b).hit("client-1", 10, 60) for i in range(12)]
    assert [r.allowed for r in results] == [True] * 10 + [False] * 2
    assert results[9].remaining == 0 and results[0].remaining == 9
    denied = results[10]
    # 10 s into the window: the next window starts in 50 s, where this one's share
    # (10 * (1 - f)) must fall to 9, i.e. 6 s more.
    assert denied.retry_after == 56
    assert await a.allow("client-2", 10, 60)  # another key has its own budget
    clock.now += 50  # the next window's start: the previous one still weighs fully
    assert not await a.allow("client-1", 10, 60)
    clock.now += 6  # as Retry-After said: 10 * 0.9 + 1 fits
    assert [await b.allow("client-1", 10, 60) for _ in range(2)] == [True, False]
    clock.now += 24  # half-way: 10 * 0.5 + 1 counted leaves room for four more
    assert [await a.allow("client-1", 10, 60) for _ in range(5)] == [True] * 4 + [False]


def test_shared_through_redis() -> None:
    async def main() -> None:
        clock = Clock(600_000.0 + 10)  # 10 s into a 60 s window
        ns = namespace()
        one, two = RedisClient(REDIS_URL, namespace=ns), RedisClient(REDIS_URL, namespace=ns)
        try:
            await exercise(RateLimiter(one, clock=clock), RateLimiter(two, clock=clock), clock)
        finally:
            await one.close()
            await two.close()

    asyncio.run(main())


def test_in_process() -> None:
    clock = Clock(600_000.0 + 10)
    limiter = RateLimiter(None, clock=clock)
    asyncio.run(exercise(limiter, limiter, clock))


def test_redis_unreachable_falls_back_to_in_process() -> None:
    async def main() -> None:
        clock = Clock(600_000.0 + 10)
        client = RedisClient(f"redis://127.0.0.1:{free_port()}/0", namespace=namespace())
        try:
            limiter = RateLimiter(client, clock=clock)
            await exercise(limiter, limiter, clock)
        finally:
            await client.close()

    asyncio.run(main())


def test_local_table_is_bounded() -> None:
    limiter = RateLimiter(None, max_local_keys=100)

    async def main() -> None:
        for i in range(1000):
            assert await limiter.allow(f"k{i}", 1, 60)

    asyncio.run(main())
    assert len(limiter._local) == 100


def test_refusals() -> None:
    limiter = RateLimiter(None)
    assert not asyncio.run(limiter.allow("x", 0, 60))
    with pytest.raises(ValueError):
        asyncio.run(limiter.allow("x", 1, 0))
