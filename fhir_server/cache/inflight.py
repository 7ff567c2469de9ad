"""How many requests one client has running at once, shared by every replica through Redis.

Each running request holds a slot: a member of the client's sorted set in Redis, scored
with the time it lapses. Acquiring first drops lapsed members, so the slots of a worker
that crashed (and never released them) are forgotten after ``SLOT_TTL_SECONDS`` — one
by one, even while the client keeps sending, which a plain counter with an expiry
would not do. Check and add are one Lua call (atomic).

Without Redis (no ``REDIS_URL``, or Redis unavailable) slots are counted in process, per
worker. A slot is released where it was counted, whatever Redis does in between.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from fhir_server.cache.redis_client import RedisClient

#: Seconds after which a slot nobody released lapses. Longer than a request may run
#: (statement timeouts are tens of seconds); a request outliving it only lets its
#: client have one more.
SLOT_TTL_SECONDS = 300

#: KEYS: the client's set; ARGV: now (ms), limit, lapse time (ms), member, ttl (ms).
#: Returns 1 when the slot was taken, 0 when the client is at its limit.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class Slot:
    """One running request's place in its client's count; release it once, when done."""

    __slots__ = ("_in_flight", "key", "member")

    def __init__(self, in_flight: InFlight, key: str, member: str | None) -> None:
        self._in_flight = in_flight
        self.key = key
        #: the member in Redis; None when counted in process
        self.member = member

    async def release(self) -> None:
        """Give the slot back."""
        await self._in_flight.release(self)


class InFlight:
    """``acquire(key, limit)``: a Slot while ``key`` has fewer than ``limit`` running."""

    def __init__(self, client: RedisClient | None = None, *,
                 ttl_seconds: float = SLOT_TTL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        """Use ``client`` when given and reachable, else the in-process count.

        ``clock`` is wall time so that replicas agree on when slots lapse.
        """
        self._client = client
        self._script = client.script(_ACQUIRE) if client is not None else None
        self._ttl_ms = int(ttl_seconds * 1000)
        self._clock = clock
        #: key -> slots held in this process (keys at zero are removed)
        self._local: dict[str, int] = {}

    async def acquire(self, key: str, limit: int) -> Slot | None:
        """A slot for ``key``, or None when ``limit`` slots are already held."""
        if self._client is not None and self._script is not None and self._client.available:
            member = uuid.uuid4().hex
            now = int(self._clock() * 1000)
            keys = [self._client.key("inflight", key)]
            args: list[int | str] = [now, limit, now + self._ttl_ms, member, self._ttl_ms]
            script = self._script
            taken = await self._client.run(lambda r: script(keys, args, client=r))
            if taken is not None:
                return Slot(self, key, member) if int(taken) else None
        held = self._local.get(key, 0)
        if held >= limit:
            return None
        self._local[key] = held + 1
        return Slot(self, key, None)

    async def release(self, slot: Slot) -> None:
        """Give ``slot`` back (a Redis failure leaves it to lapse)."""
        if slot.member is None:
            held = self._local.get(slot.key, 0) - 1
            if held > 0:
                self._local[slot.key] = held
            else:
                self._local.pop(slot.key, None)
            return
        assert self._client is not None
        name, member = self._client.key("inflight", slot.key), slot.member
        await self._client.run(lambda r: r.zrem(name, member))
