"""Which callers wrote within the last few seconds (read-your-writes with a replica).

A caller that has just written reads the primary until ``READ_YOUR_WRITES_SECONDS``
have passed, since a replica may not have replayed its write yet. With Redis every
worker and replica of the server learns of the write (a key that expires with the
window); without it, the worker that made the write does. When Redis cannot be asked,
every caller is taken to have written: reads then go to the primary, never stale.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fhir_server.cache.redis_client import RedisClient

#: callers remembered in-process before the expired ones are swept out
_SWEEP_AT = 10_000


class RecentWrites:
    """The callers who wrote within ``window`` seconds, in-process and in Redis."""

    def __init__(self, window: float, redis: RedisClient | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._redis = redis
        self._clock = clock
        #: caller -> when its window ends (this worker's own writes)
        self._until: dict[str, float] = {}

    def _key(self, caller: str) -> str:
        assert self._redis is not None
        return self._redis.key("ryw", caller)

    async def note(self, caller: str) -> None:
        """``caller`` has just written (a committed write)."""
        if self.window <= 0:
            return
        if len(self._until) >= _SWEEP_AT:
            now = self._clock()
            self._until = {k: t for k, t in self._until.items() if t > now}
        self._until[caller] = self._clock() + self.window
        if self._redis is not None:
            await self._redis.set(self._key(caller), b"1", self.window)

    async def recent(self, caller: str) -> bool:
        """Whether ``caller`` wrote within the window (True when Redis cannot say)."""
        if self.window <= 0:
            return False
        until = self._until.get(caller)
        if until is not None and until > self._clock():
            return True
        if self._redis is None:
            return False
        key = self._key(caller)
        found = await self._redis.run(lambda r: r.exists(key))
        return found is None or bool(found)
