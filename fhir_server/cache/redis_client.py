"""One shared ``redis.asyncio`` client that never raises and backs off when Redis fails.

Every call goes through :meth:`RedisClient.run`: Redis errors and timeouts are
swallowed (the caller gets ``None`` and falls back to the database or to an in-process
structure), and after a failure Redis is not contacted again for ``backoff`` seconds, so
that an outage costs one short timeout per backoff period instead of one per request.
After the backoff exactly one call probes Redis; the others keep skipping it until that
probe answers. Transitions (up -> down, down -> up) are logged once each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from fhir_server.settings import Settings

log = logging.getLogger("fhir_server.cache")

T = TypeVar("T")

#: what a lost, slow or refusing Redis raises through redis-py (IncompleteReadError is
#: an EOFError; asyncio.timeout raises the builtin TimeoutError)
_FAILURES = (RedisError, OSError, EOFError, TimeoutError)


def key_prefix(namespace: str = "") -> str:
    """``fhir:`` or ``fhir:<namespace>:``: every key this server writes starts with it."""
    return f"fhir:{namespace}:" if namespace else "fhir:"


class RedisClient:
    """A ``redis.asyncio.Redis`` with short timeouts, no retries and a failure backoff."""

    def __init__(self, url: str, *, namespace: str = "", timeout: float = 0.1,
                 backoff: float = 5.0, max_connections: int = 64,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Create the client (no connection is made before the first call).

        ``timeout`` bounds connecting and each socket read/write, and also the wait for a
        free pooled connection; a whole call is cut off after three times that.
        """
        # No retries: a retry would double the time an outage costs each request, and
        # the backoff below already decides when Redis is worth trying again.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout,
            socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), health_check_interval=0,
        )
        self._redis: Redis = Redis.from_pool(pool)
        self._deadline = 3 * timeout
        self._backoff = backoff
        self._clock = clock
        self._down = False
        self._down_until = 0.0
        self._probing = False
        self.prefix = key_prefix(namespace)

    @property
    def available(self) -> bool:
        """False while Redis is in its failure backoff (calls would return None at once)."""
        if not self._down:
            return True
        return not self._probing and self._clock() >= self._down_until

    def key(self, *parts: str) -> str:
        """A key under this client's prefix: ``fhir:[ns:]part1:part2``."""
        return self.prefix + ":".join(parts)

    async def run(self, op: Callable[[Redis], Awaitable[T]],
                  deadline: float | None = None) -> T | None:
        """``await op(redis)``, or None when Redis failed now or recently.

        ``deadline`` (seconds) replaces the default bound of three socket timeouts, for
        the rare long operation (a namespace flush).

        A result that is legitimately None (a missing key) is indistinguishable from a
        failure on purpose: callers treat both as "not cached".
        """
        probe = False
        if self._down:
            if self._probing or self._clock() < self._down_until:
                return None
            probe = self._probing = True  # this call is the one probe after the backoff
        try:
            async with asyncio.timeout(deadline or self._deadline):
                result = await op(self._redis)
        except _FAILURES as exc:
            self._failed(exc)
            return None
        finally:
            if probe:
                self._probing = False
        if self._down:
            self._down = False
            log.info("Redis is reachable again; caching resumed")
        return result

    def _failed(self, exc: BaseException) -> None:
        self._down_until = self._clock() + self._backoff
        if not self._down:
            self._down = True
            log.warning("Redis unavailable (%s: %s); running uncached, next try in %g s",
                        type(exc).__name__, exc, self._backoff)

    def script(self, lua: str) -> AsyncScript:
        """A Lua script run by EVALSHA (loaded on first use; reloaded after a restart)."""
        return self._redis.register_script(lua)

    async def ping(self) -> bool:
        """Whether Redis answers now (respects the backoff, like every call)."""
        return bool(await self.run(lambda r: r.ping()))

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None when missing or when Redis is unavailable."""
        value = await self.run(lambda r: r.get(key))
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds; False when Redis failed."""
        ms = max(1, int(ttl_s * 1000))
        return bool(await self.run(lambda r: r.set(key, value, px=ms)))

    async def delete(self, *keys: str) -> bool:
        """Remove keys; False when Redis failed (True even if they did not exist)."""
        if not keys:
            return True
        return await self.run(lambda r: r.delete(*keys)) is not None

    async def close(self) -> None:
        """Close the connections (at shutdown); never raises."""
        try:
            await self._redis.aclose()
        except _FAILURES as exc:  # closing a broken connection is not worth a traceback
            log.debug("closing Redis: %s", exc)


def open_redis(settings: Settings, namespace: str = "") -> RedisClient | None:
    """The shared client when ``REDIS_URL`` is set, else None (everything in-process)."""
    if not settings.redis_url:
        return None
    return RedisClient(settings.redis_url, namespace=namespace)
