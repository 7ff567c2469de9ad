"""RedisClient: swallowed failures, one timeout per backoff period, one log line per change."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from fhir_server.cache.redis_client import RedisClient, key_prefix

from .support import namespace, redis_server, redis_url_or_skip

REDIS_URL = redis_url_or_skip()
pytestmark = pytest.mark.redis


def test_basic_operations() -> None:
    async def main() -> None:
        client = RedisClient(REDIS_URL, namespace=namespace())
        try:
            key = client.key("t", "a")
            assert key.startswith(client.prefix) and client.prefix.startswith("fhir:test-")
            assert await client.ping()
            assert await client.get(key) is None
            assert await client.set(key, b"v", 10)
            assert await client.get(key) == b"v"
            assert await client.delete(key)
            assert await client.get(key) is None
        finally:
            await client.close()

    asyncio.run(main())
    assert key_prefix() == "fhir:" and key_prefix("a") == "fhir:a:"


def test_backoff_and_recovery(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        with redis_server() as server:
            client = RedisClient(server.url, backoff=0.5, timeout=0.1)
            try:
                assert await client.set("k", b"1", 60)
                server.pause()  # hangs: every call would wait for its timeout
                started = time.perf_counter()
                assert await client.get("k") is None
                assert time.perf_counter() - started < 0.5
                assert not client.available
                started = time.perf_counter()
                for _ in range(100):
                    assert await client.get("k") is None
                assert time.perf_counter() - started < 0.05  # skipped, not attempted
                server.resume()
                await asyncio.sleep(0.6)
                assert client.available
                assert await client.get("k") == b"1"
                server.kill()
                assert not await client.set("k", b"2", 60)
            finally:
                await client.close()

    with caplog.at_level(logging.INFO, logger="fhir_server.cache"):
        asyncio.run(main())
    levels = [r.levelno for r in caplog.records if r.name == "fhir_server.cache"]
    assert levels == [logging.WARNING, logging.INFO, logging.WARNING]
