"""An external issuer's signing keys (``AUTH_JWKS_URL``), fetched and cached.

The JWKS is kept in the process and, with Redis, shared by every replica for
``TTL_SECONDS``; a token naming an unknown ``kid`` (the issuer rotated its keys) makes it
fetch again, at most once per ``REFETCH_SECONDS`` so that tokens with made-up key ids
cannot make the server hammer the issuer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import orjson
from joserfc.jwk import KeySet

from fhir_server.cache.redis_client import RedisClient

log = logging.getLogger(__name__)

TTL_SECONDS = 600
REFETCH_SECONDS = 30


class RemoteJwks:
    """The keys of ``issuer`` (from ``jwks_url``, or its OpenID discovery document)."""

    def __init__(self, issuer: str, jwks_url: str = "", redis: RedisClient | None = None,
                 timeout: float = 5.0) -> None:
        self.issuer = issuer.rstrip("/")
        self._url = jwks_url
        self._redis = redis
        self._timeout = timeout
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self._tried = 0.0

    async def keys(self, kid: str | None) -> KeySet | None:
        """The key set, holding ``kid`` if the issuer has it now (None: unreachable)."""
        now = time.monotonic()
        if self._keys is not None and now - self._fetched < TTL_SECONDS and _has(
                self._keys, kid):
            return self._keys
        if self._keys is None or now - self._tried >= REFETCH_SECONDS:
            self._tried = now
            fresh = await self._load(force=self._keys is not None)
            if fresh is not None:
                self._keys, self._fetched = fresh, now
        return self._keys

    async def _load(self, force: bool) -> KeySet | None:
        cache_key = None
        if self._redis is not None:
            cache_key = self._redis.key("jwks", self.issuer)
            if not force:
                cached = await self._redis.run(lambda r: r.get(cache_key))
                if isinstance(cached, bytes | str):
                    return KeySet.import_key_set(orjson.loads(cached))
        try:
            data = await self._fetch()
            keys = KeySet.import_key_set(data)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot fetch the signing keys of %s: %s", self.issuer, exc)
            return None
        if cache_key is not None:
            raw = orjson.dumps(data)
            await self._redis.run(lambda r: r.set(cache_key, raw, ex=TTL_SECONDS))  # type: ignore[union-attr]
        return keys

    async def _fetch(self) -> Any:
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            url = self._url
            if not url:
                answer = await client.get(f"{self.issuer}/.well-known/openid-configuration")
                answer.raise_for_status()
                url = self._url = str(answer.json()["jwks_uri"])
            answer = await client.get(url)
            answer.raise_for_status()
            return answer.json()


def _has(keys: KeySet, kid: str | None) -> bool:
    return kid is None or any(k.kid == kid for k in keys.keys)
