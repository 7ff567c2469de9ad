"""Repositories for the cache tests: a PgRepository on its own pool behind a CachedRepository."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.cache.redis_client import RedisClient
from fhir_server.cache.repository import CachedRepository
from fhir_server.paths import data_dir
from fhir_server.service.repository import StoredVersion, WriteResult
from fhir_server.settings import load_settings
from fhir_server.storage.pool import make_pool
from fhir_server.storage.repository import PgRepository


class Spy:
    """Delegates to a repository, counting reads; ``gate_reads``/``gate_writes`` pause them.

    A gated read has already loaded its row from the database when it signals ``loaded``
    and waits for ``release_read``; a gated write waits for ``release_write`` before it
    touches the database (BEGIN has already happened) and signals ``entered``.
    """

    def __init__(self, inner: PgRepository) -> None:
        self.inner = inner
        self.reads = 0
        self.vreads = 0
        self.gate_reads = False
        self.gate_writes = False
        self.fail_after_write = False
        self.loaded = asyncio.Event()
        self.release_read = asyncio.Event()
        self.entered = asyncio.Event()
        self.release_write = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        self.reads += 1
        version = await self.inner.read(resource_type, id)
        if self.gate_reads:
            self.loaded.set()
            await self.release_read.wait()
        return version

    async def vread(self, resource_type: str, id: str, version_id: int) -> StoredVersion | None:
        self.vreads += 1
        return await self.inner.vread(resource_type, id, version_id)

    async def write(self, *args: Any, **kwargs: Any) -> WriteResult:
        if self.gate_writes:
            self.entered.set()
            await self.release_write.wait()
        result = await self.inner.write(*args, **kwargs)
        if self.fail_after_write:
            # committed, but the caller cannot know: as a lost connection or a crash
            raise ConnectionResetError("connection lost after the statement was sent")
        return result


@dataclass
class Replica:
    """One "server replica": its own pool and Redis client, sharing DB and Redis."""

    cached: CachedRepository
    spy: Spy
    pg: PgRepository
    client: RedisClient


@asynccontextmanager
async def replica(pg_url: str, redis_url: str, ns: str, *, backoff: float = 5.0,
                  redis_timeout: float = 0.1, **options: Any) -> AsyncIterator[Replica]:
    """Open a replica inside the running event loop; close it afterwards."""
    settings = load_settings({"DATABASE_URL": pg_url, "DB_POOL_MIN": "1",
                              "DB_POOL_MAX": "4"}, env_file=None)
    pool = make_pool(settings)
    await pool.open(wait=True)
    pg = PgRepository(pool, data_dir("migrations"))
    spy = Spy(pg)
    client = RedisClient(redis_url, namespace=ns, backoff=backoff,
                         timeout=redis_timeout)
    try:
        yield Replica(CachedRepository(spy, client, **options), spy, pg,
                      client)
    finally:
        await client.close()
        await pool.close()


def patient(rid: str, **fields: object) -> str:
    """A Patient's JSON text."""
    return orjson.dumps({"resourceType": "Patient", "id": rid, **fields}).decode()


