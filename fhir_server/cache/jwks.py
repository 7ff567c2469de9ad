"""A small cache of JSON Web Key Sets by URL: Redis shared by replicas, plus an in-process copy.

The in-process copy is trusted until the expiry given to :meth:`JwksCache.put` (a JWKS
is allowed to be that stale by definition), so most lookups cost no round trip; Redis
lets a key set fetched by one replica serve the others. Without Redis only the
in-process copy is used. On an unknown ``kid`` the caller should fetch the key set again
and ``put`` it (key rotation), as with any JWKS cache.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import orjson

from fhir_server.cache.redis_client import RedisClient


class JwksCache:
    """``get(url)`` / ``put(url, jwks, ttl_s)`` / ``delete(url)``."""

    def __init__(self, client: RedisClient | None = None, *, max_local: int = 64,
                 clock: Callable[[], float] = time.time) -> None:
        """Use ``client`` when given; ``clock`` is wall time (expiries are shared)."""
        self._client = client
        self._clock = clock
        self._max_local = max_local
        #: url -> (expires at, key set)
        self._local: dict[str, tuple[float, dict[str, Any]]] = {}

    def _key(self, url: str) -> str:
        assert self._client is not None
        # URLs can be long and contain anything: hash them into a fixed-size key.
        return self._client.key("jwks", hashlib.sha256(url.encode()).hexdigest())

    def _keep(self, url: str, expires: float, jwks: dict[str, Any]) -> None:
        self._local.pop(url, None)
        if len(self._local) >= self._max_local:
            now = self._clock()
            for stale in [u for u, (exp, _) in self._local.items() if exp <= now]:
                del self._local[stale]
            if len(self._local) >= self._max_local:
                del self._local[next(iter(self._local))]  # the oldest entry
        self._local[url] = (expires, jwks)

    async def get(self, url: str) -> dict[str, Any] | None:
        """The cached key set of ``url`` if not expired, else None (do not mutate it)."""
        now = self._clock()
        local = self._local.get(url)
        if local is not None:
            if local[0] > now:
                return local[1]
            del self._local[url]
        if self._client is None:
            return None
        raw = await self._client.get(self._key(url))
        if raw is None:
            return None
        try:
            stored = orjson.loads(raw)
            expires, jwks = float(stored["exp"]), stored["jwks"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # not written by this code: treat as absent
        if expires <= now or not isinstance(jwks, dict):
            return None
        self._keep(url, expires, jwks)
        return jwks

    async def put(self, url: str, jwks: dict[str, Any], ttl_s: float) -> None:
        """Cache ``jwks`` for ``ttl_s`` seconds, here and (when available) in Redis."""
        expires = self._clock() + ttl_s
        self._keep(url, expires, jwks)
        if self._client is not None:
            value = orjson.dumps({"exp": expires, "jwks": jwks})
            await self._client.set(self._key(url), value, ttl_s)

    async def delete(self, url: str) -> None:
        """Forget the key set of ``url`` everywhere (e.g. after a failed signature check)."""
        self._local.pop(url, None)
        if self._client is not None:
            await self._client.delete(self._key(url))
