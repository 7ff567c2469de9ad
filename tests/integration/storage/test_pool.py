"""The pool against a real PostgreSQL: connections kept from searches, a timed-out
search's connection back at once, and a database known to be down answered at once."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import orjson
import psycopg
from psycopg import sql

from fhir_server.errors import ServiceUnavailable, Timeout
from fhir_server.paths import data_dir
from fhir_server.search.request import SearchRequest
from fhir_server.settings import load_settings
from fhir_server.storage.pool import PROBE_INTERVAL, FhirPool, make_pool
from fhir_server.storage.repository import PgRepository, PgSession

T = TypeVar("T")
EVERY_PATIENT = SearchRequest(("Patient",))


def run(url: str, body: Callable[[FhirPool, PgRepository], Awaitable[T]], wait: bool = True,
        **env: str) -> T:
    """Run ``body`` with a pool (``env`` settings) and a repository on it."""

    async def main() -> T:
        settings = load_settings({"DATABASE_URL": url, "DB_POOL_MIN": "1", **env},
                                 env_file=None)
        pool = make_pool(settings)
        await pool.open(wait=wait)
        try:
            return await body(pool, PgRepository(pool, data_dir("migrations"),
                                                 settings.search_timeout_ms))
        finally:
            await pool.close()

    return asyncio.run(main())


async def timed(call: Awaitable[object]) -> tuple[float, BaseException | None]:
    """Seconds ``call`` took, and what it raised."""
    started = time.monotonic()
    try:
        await call
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def test_slow_searches_leave_the_reserved_connections(migrated_url: str) -> None:
    async def body(pool: FhirPool, repo: PgRepository) -> None:
        held = asyncio.Event()
        release = asyncio.Event()

        async def slow_search() -> None:
            async with pool.checkout(search=True) as conn:
                held.set()
                await conn.execute("SELECT pg_sleep(0.1)")
                await release.wait()

        slow = [asyncio.create_task(slow_search()) for _ in range(2)]  # every search slot
        await held.wait()
        await asyncio.sleep(0.05)
        took, error = await timed(repo.read("Patient", "nobody"))
        assert error is None and took < 0.3
        rid = f"pool-{uuid.uuid4().hex[:12]}"
        took, error = await timed(repo.write(
            "Patient", rid, orjson.dumps({"resourceType": "Patient", "id": rid}).decode(),
            "PUT"))
        assert error is None and took < 0.3
        took, error = await timed(repo.search(EVERY_PATIENT, 10))
        assert isinstance(error, ServiceUnavailable)
        assert (error.status, error.code) == (503, "transient")
        assert error.headers == {"Retry-After": "1"}
        assert 0.4 <= took < 1.5  # DB_POOL_TIMEOUT, not more
        release.set()
        await asyncio.gather(*slow)
        took, error = await timed(repo.search(EVERY_PATIENT, 10))
        assert error is None and took < 0.5

    run(migrated_url, body, DB_POOL_MAX="4", DB_RESERVED_CONNECTIONS="2",
        DB_POOL_TIMEOUT="0.5")


def test_a_timed_out_search_gives_its_connection_back_at_once(migrated_url: str) -> None:
    async def body(pool: FhirPool, repo: PgRepository) -> None:
        async with pool.checkout(search=True) as conn:
            session = PgSession(conn, search_timeout_ms=100)
            took, error = await timed(session._fetch((sql.SQL("SELECT pg_sleep(5)"), [])))
            assert isinstance(error, Timeout) and error.status == 503
            assert took < 1
        # the only search slot and connection are free again, the general timeout back
        took, error = await timed(repo.search(EVERY_PATIENT, 10))
        assert error is None and took < 0.5
        async with pool.checkout(search=True) as conn:
            cur = await conn.execute("SHOW statement_timeout")
            assert await cur.fetchone() == ("30s",)

    run(migrated_url, body, DB_POOL_MAX="2", DB_RESERVED_CONNECTIONS="1",
        DB_POOL_TIMEOUT="0.5")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def forwarder(port: int, target: tuple[str, int]) -> AsyncIterator[None]:
    """A TCP forwarder on ``port`` to the real PostgreSQL: the database is "back"."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(connected, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


def test_a_database_known_down_is_answered_at_once(migrated_url: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(migrated_url)
    target = (str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432))
    port = _free_port()  # nothing listens there until the forwarder starts
    info.update(host="127.0.0.1", port=str(port))
    url = psycopg.conninfo.make_conninfo(**{k: v for k, v in info.items() if v is not None})

    async def body(pool: FhirPool, repo: PgRepository) -> None:
        for _ in range(150):  # the pool's first attempt is under way: 3 s at most
            if pool.known_down:
                break
            await asyncio.sleep(0.02)
        assert pool.known_down  # the pool's first connection attempt was refused
        for call in (repo.read("Patient", "x"), repo.search(EVERY_PATIENT, 10),
                     repo.write("Patient", "x", None, "DELETE")):
            took, error = await timed(call)
            assert isinstance(error, ServiceUnavailable)
            assert (error.status, error.code) == (503, "transient")
            assert error.headers == {"Retry-After": "1"}
            assert took < 0.1  # not DB_POOL_TIMEOUT
        readiness = await repo.readiness()  # as before: a real attempt, and not ready
        assert (readiness.database, readiness.migrations) == (False, "unknown")
        async with forwarder(port, target):
            deadline = time.monotonic() + 3 * PROBE_INTERVAL + 2
            while pool.known_down and time.monotonic() < deadline:
                with contextlib.suppress(ServiceUnavailable):
                    await repo.read("Patient", "x")  # refused requests start the probes
                await asyncio.sleep(0.1)
            assert not pool.known_down
            assert await repo.read("Patient", "x") is None

    run(url, body, wait=False, DB_POOL_MAX="2", DB_RESERVED_CONNECTIONS="1",
        DB_POOL_TIMEOUT="5")
