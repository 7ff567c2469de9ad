"""RecentWrites on the shared Redis: a write noted by one worker is seen by another."""

from __future__ import annotations

import asyncio

from fhir_server.cache.recent_writes import RecentWrites
from fhir_server.cache.redis_client import RedisClient
from tests.integration.cache.support import namespace, redis_url_or_skip

URL = redis_url_or_skip()


def test_every_worker_sees_a_callers_write_until_the_window_ends() -> None:
    async def main() -> list[bool]:
        ns = namespace()
        one, two = RedisClient(URL, namespace=ns), RedisClient(URL, namespace=ns)
        try:
            writer, reader = RecentWrites(0.5, one), RecentWrites(0.5, two)
            seen = [await reader.recent("c:a:")]
            await writer.note("c:a:")
            seen += [await reader.recent("c:a:"), await reader.recent("c:b:")]
            await asyncio.sleep(0.6)
            seen.append(await reader.recent("c:a:"))
            return seen
        finally:
            await one.close()
            await two.close()

    assert asyncio.run(main()) == [False, True, False, False]


def test_a_redis_that_cannot_answer_sends_every_caller_to_the_primary() -> None:
    async def main() -> bool:
        client = RedisClient("redis://127.0.0.1:1/0", timeout=0.05)
        try:
            return await RecentWrites(5.0, client).recent("c:nobody:")
        finally:
            await client.close()

    assert asyncio.run(main()) is True
