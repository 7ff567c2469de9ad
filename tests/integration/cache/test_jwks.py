"""JwksCache: round trip through Redis between replicas, expiry, in-process fallback."""

from __future__ import annotations

import asyncio

import pytest

from fhir_server.cache.jwks import JwksCache
from fhir_server.cache.redis_client import RedisClient

from .support import free_port, namespace, redis_url_or_skip

REDIS_URL = redis_url_or_skip()
pytestmark = pytest.mark.redis

URL = "https://idp.example.org/realms/hospital/protocol/openid-connect/certs"
JWKS = {"keys": [{"kty": "RSA", "kid": "k1", "n": "0vx7", "e": "AQAB"}]}


def test_round_trip_between_replicas_and_expiry() -> None:
    async def main() -> None:
        ns = namespace()
        one, two = RedisClient(REDIS_URL, namespace=ns), RedisClient(REDIS_URL, namespace=ns)
        try:
            first, second = JwksCache(one), JwksCache(two)
            assert await second.get(URL) is None
            await first.put(URL, JWKS, ttl_s=0.5)
            assert await first.get(URL) == JWKS
            assert await second.get(URL) == JWKS  # fetched by the other replica
            assert await JwksCache(two).get("https://other.example.org/jwks") is None
            await asyncio.sleep(0.6)
            assert await first.get(URL) is None and await second.get(URL) is None
            await first.put(URL, JWKS, ttl_s=60)
            await first.delete(URL)
            assert await JwksCache(two).get(URL) is None
        finally:
            await one.close()
            await two.close()

    asyncio.run(main())


def test_in_process_and_with_redis_unreachable() -> None:
    async def main() -> None:
        down = RedisClient(f"redis://127.0.0.1:{free_port()}/0")
        try:
            for cache in (JwksCache(None), JwksCache(down)):
                assert await cache.get(URL) is None
                await cache.put(URL, JWKS, ttl_s=0.3)
                assert await cache.get(URL) == JWKS
                await asyncio.sleep(0.4)
                assert await cache.get(URL) is None
        finally:
            await down.close()

    asyncio.run(main())


def test_local_copies_are_bounded() -> None:
    async def main() -> None:
        cache = JwksCache(None, max_local=4)
        for i in range(10):
            await cache.put(f"{URL}?{i}", JWKS, ttl_s=60)
        assert [await cache.get(f"{URL}?{i}") is not None for i in range(10)] == \
            [False] * 6 + [True] * 4

    asyncio.run(main())
