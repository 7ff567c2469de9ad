"""A sliding-window rate limiter shared by every replica through Redis.

The window is the "sliding window counter" approximation: the count of the current
fixed window plus the previous window's count weighted by how much of it still
overlaps the sliding window. It needs two counters per key, avoids the double burst a
plain fixed window allows at its edges, and costs one Lua call (atomic) per request.
Refused requests are not counted, so a client that keeps retrying still gets through at
``limit`` per window.

Without Redis (no ``REDIS_URL``, or Redis unavailable) the same algorithm runs on a
bounded in-process table: limits then apply per worker process instead of globally.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fhir_server.cache.redis_client import RedisClient

#: KEYS: this window's counter, the previous one's; ARGV: weight of the previous
#: window (0..1), limit, ttl_ms. Returns {allowed 1/0, current count, previous count}.
_HIT = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
if prev * tonumber(ARGV[1]) + cur + 1 > tonumber(ARGV[2]) then return {0, cur, prev} end
cur = redis.call('INCR', KEYS[1])
if cur == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {1, cur, prev}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request: allowed or not, and the figures for the headers."""

    allowed: bool
    limit: int
    #: requests still allowed now (approximate, as the window slides)
    remaining: int
    #: whole seconds until one more request would be allowed (0 when allowed), for
    #: ``Retry-After``
    retry_after: int


def _decide(allowed: bool, cur: int, prev: int, limit: int, frac: float,
            window_s: int) -> Decision:
    weighted = prev * (1.0 - frac) + cur
    remaining = max(0, math.floor(limit - weighted))
    if allowed:
        return Decision(True, limit, remaining, 0)
    if cur + 1 <= limit and prev > 0:
        # Room in this window: wait for the previous window's share to decay enough.
        wait = ((1.0 - (limit - cur - 1) / prev) - frac) * window_s
    else:
        # This window is full: wait for the next one, until this one's share decays.
        share = 1.0 - (limit - 1) / cur if cur > 0 else 0.0
        wait = (1.0 - frac + max(0.0, share)) * window_s
    return Decision(False, limit, 0, max(1, math.ceil(wait - 1e-6)))  # float noise


class RateLimiter:
    """``allow(key, limit, window_s)``: at most ``limit`` requests per ``window_s`` seconds."""

    def __init__(self, client: RedisClient | None = None, *, max_local_keys: int = 100_000,
                 clock: Callable[[], float] = time.time) -> None:
        """Use ``client`` when given and reachable, else the in-process table.

        ``clock`` is wall time so that replicas agree on window boundaries.
        """
        self._client = client
        self._script = client.script(_HIT) if client is not None else None
        self._clock = clock
        self._max_local = max_local_keys
        #: (key, window_s) -> [window index, current count, previous count], in LRU order
        self._local: OrderedDict[tuple[str, int], list[int]] = OrderedDict()

    async def allow(self, key: str, limit: int, window_s: int) -> bool:
        """Count one request for ``key`` and say whether it is within the limit."""
        return (await self.hit(key, limit, window_s)).allowed

    async def hit(self, key: str, limit: int, window_s: int) -> Decision:
        """Count one request for ``key``; the Decision carries Retry-After and remaining."""
        if window_s < 1:
            raise ValueError("window_s must be at least 1")
        if limit < 1:
            return Decision(False, limit, 0, window_s)
        now = self._clock()
        index = int(now // window_s)
        frac = now / window_s - index  # how far into the current window we are
        if self._client is not None and self._script is not None and self._client.available:
            answer = await self._remote(key, limit, window_s, index, frac)
            if answer is not None:
                return answer
        return self._hit_local(key, limit, window_s, index, frac)

    async def _remote(self, key: str, limit: int, window_s: int, index: int,
                      frac: float) -> Decision | None:
        assert self._client is not None and self._script is not None
        script, base = self._script, self._client.key("rl", str(window_s), key)
        keys = [f"{base}:{index}", f"{base}:{index - 1}"]
        args: list[float | int] = [1.0 - frac, limit, (2 * window_s + 1) * 1000]
        reply = await self._client.run(lambda r: script(keys, args, client=r))
        if not isinstance(reply, list) or len(reply) != 3:
            return None
        allowed, cur, prev = (int(x) for x in reply)
        return _decide(bool(allowed), cur, prev, limit, frac, window_s)

    def _hit_local(self, key: str, limit: int, window_s: int, index: int,
                   frac: float) -> Decision:
        slot = (key, window_s)
        entry = self._local.get(slot)
        if entry is None:
            entry = [index, 0, 0]
            self._local[slot] = entry
            if len(self._local) > self._max_local:
                self._local.popitem(last=False)  # forget the least recently used key
        else:
            self._local.move_to_end(slot)
        if entry[0] != index:  # the window moved on: current becomes previous (if adjacent)
            entry[2] = entry[1] if entry[0] == index - 1 else 0
            entry[0], entry[1] = index, 0
        cur, prev = entry[1], entry[2]
        allowed = prev * (1.0 - frac) + cur + 1 <= limit
        if allowed:
            entry[1] = cur = cur + 1
        return _decide(allowed, cur, prev, limit, frac, window_s)
