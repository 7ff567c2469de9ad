"""The psycopg connection pool of one worker process, opened in the app's lifespan.

FHIR requests take their connections through :meth:`FhirPool.checkout`: searches,
histories and operations share ``DB_POOL_MAX - DB_RESERVED_CONNECTIONS`` of them, so
slow searches never take the ones reads by id, writes and readiness need; and while the
database is known to be down (the last connection attempt failed) a request is answered
503 at once instead of after ``DB_POOL_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from time import monotonic
from typing import Any

import psycopg
from psycopg import pq
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from fhir_server.errors import ServiceUnavailable
from fhir_server.settings import Settings

#: Seconds a failing reconnection keeps retrying (at about 0, 1, 3 and 5 s) before the
#: pool gives up until the next checkout starts a new attempt. psycopg_pool's default
#: (5 minutes of exponential backoff) left the server answering 503 for up to as long as
#: the outage had lasted after PostgreSQL came back (tests/integration/ops/test_faults.py).
RECONNECT_TIMEOUT = 5.0
#: Seconds between two probes of a database known to be down (and its Retry-After).
PROBE_INTERVAL = 1.0
#: Seconds the request that starts a probe waits for it (a refused connection fails in
#: milliseconds; one to an unreachable host is given up on, for that request, here).
PROBE_WAIT = 0.25
#: Seconds between two looks at whether the database is known down while a request
#: waits for the replacement of a connection the server closed.
REPLACEMENT_SLICE = 0.05


def conninfo(settings: Settings) -> str:
    """The libpq connection string the server uses."""
    return settings.database_url


def _closed_by_server(conn: psycopg.AsyncConnection[Any]) -> bool:
    """True when the server has ended this idle connection (a restart, a terminate).

    No round trip: non-blocking reads of what is pending on the socket, where an idle
    connection has nothing. A closing server sends its FATAL message, which the first
    read takes (libpq treats it as a notice), then closes the socket, which the second
    read finds; libpq then marks the connection bad.
    """
    if conn.closed:
        return True
    try:
        for _ in range(2):
            conn.pgconn.consume_input()
    except psycopg.OperationalError:
        return True
    return conn.pgconn.status != pq.ConnStatus.OK


class FhirPool(AsyncConnectionPool):
    """A pool that never hands out a connection the server has already closed, keeps
    connections from searches, and knows when the database is down."""

    def __init__(self, *args: Any, search_slots: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: connections searches may hold at once (None: all)
        self._search_slots = asyncio.Semaphore(search_slots) if search_slots else None
        #: the last connection attempt failed: requests are refused until one succeeds
        self.known_down = False
        self._probe: asyncio.Task[None] | None = None
        self._probed_at = 0.0

    @contextlib.asynccontextmanager
    async def checkout(self, search: bool = False) -> AsyncIterator[psycopg.AsyncConnection]:
        """A connection for a FHIR request, within ``DB_POOL_TIMEOUT``; a ``search``
        (history, operation) first takes one of the slots searches share.

        ServiceUnavailable (503 ``transient``, Retry-After) at once while the database is
        known to be down, and when no slot frees up in time."""
        await self._admit()
        if not search or self._search_slots is None:
            async with self.connection() as conn:
                yield conn
            return
        deadline = monotonic() + self.timeout
        try:
            async with asyncio.timeout(self.timeout):
                await self._search_slots.acquire()
        except TimeoutError:
            raise ServiceUnavailable(
                "every database connection for searches is busy; try again later",
                headers={"Retry-After": "1"}) from None
        try:
            async with self.connection(max(deadline - monotonic(), 0.001)) as conn:
                yield conn
        finally:
            self._search_slots.release()

    async def _admit(self) -> None:
        """Nothing, unless the database is known to be down: then a 503 within
        PROBE_WAIT, after the probe this request may have started (when it finds the
        database back, the request goes on)."""
        # An idle connection may still serve: the attempt that failed may have been one
        # more than the server allows (a dead one is skipped by getconn, and replaced).
        if not self.known_down or self.get_stats().get("pool_available", 0):
            return
        if self._probe is None and monotonic() - self._probed_at >= PROBE_INTERVAL:
            self._probed_at = monotonic()
            self._probe = asyncio.create_task(self._probe_once(), name="database-probe")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._probe), PROBE_WAIT)
            if not self.known_down:
                return
        raise ServiceUnavailable("the database is unavailable; try again later",
                                 headers={"Retry-After": f"{PROBE_INTERVAL:.0f}"})

    async def _probe_once(self) -> None:
        """One connection attempt outside the pool: the pool itself stops trying after
        RECONNECT_TIMEOUT, and refused requests would never ask it again."""
        try:
            conn = await psycopg.AsyncConnection.connect(
                str(self.conninfo), connect_timeout=max(1, round(self.timeout)))
        except (psycopg.Error, OSError):
            return
        else:
            await conn.close()
            self.known_down = False
        finally:
            self._probe = None

    async def _connect(
            self, timeout: float | None = None,  # noqa: ASYNC109 (psycopg_pool's API)
    ) -> psycopg.AsyncConnection[Any]:
        # Every connection the pool opens passes here: the place that learns first.
        try:
            conn = await super()._connect(timeout)
        except Exception:
            self.known_down = True
            raise
        self.known_down = False
        return conn

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (as above)
        """Close the pool (and stop a probe in flight)."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await super().close(timeout)

    async def getconn(
            self, timeout: float | None = None,  # noqa: ASYNC109 (psycopg_pool's API)
    ) -> psycopg.AsyncConnection[Any]:
        """A connection, skipping (and replacing) the ones a database restart closed."""
        total = self.timeout if timeout is None else timeout
        deadline = monotonic() + total
        conn = await super().getconn(total)
        while _closed_by_server(conn):
            await self.putconn(conn)  # discarded; the pool opens a replacement
            conn = await self._replacement(deadline, total)
        return conn

    async def _replacement(self, deadline: float, total: float
                           ) -> psycopg.AsyncConnection[Any]:
        """The next connection after a dead one, waited for in short slices: when the
        replacement cannot be opened (the database went away, not just restarted), the
        request learns it at once instead of after DB_POOL_TIMEOUT."""
        while True:
            left = deadline - monotonic()
            if left <= 0:
                raise PoolTimeout(f"couldn't get a connection after {total:.2f} sec")
            try:
                return await super().getconn(min(left, REPLACEMENT_SLICE))
            except PoolTimeout:
                if self.known_down:
                    raise ServiceUnavailable("the database is unavailable; try again later",
                                             headers={"Retry-After": f"{PROBE_INTERVAL:.0f}"}
                                             ) from None


def make_pool(settings: Settings, replica: bool = False) -> FhirPool:
    """A pool (not yet opened) whose connections are autocommit with a statement timeout;
    ``replica``: the pool of ``DATABASE_READ_URL``, sized by ``DB_READ_POOL_*``.

    No per-checkout round trip (it would cost one per request): a checkout only skips
    connections whose socket shows the server closed them, so requests arriving after
    a database restart get fresh connections. A connection that breaks during a request
    fails that request with a 503 and is then discarded.

    Autocommit is on because every write is a single ``fhir_write`` statement or an
    explicit ``conn.transaction()`` block; implicit BEGINs would cost a round trip.
    """

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await conn.set_autocommit(True)
        if settings.db_statement_timeout_ms:
            await conn.execute(
                "SELECT set_config('statement_timeout', %s, false)",
                (f"{settings.db_statement_timeout_ms}ms",),
            )

    size = ((settings.db_read_pool_min, settings.db_read_pool_max) if replica
            else (settings.db_pool_min, settings.db_pool_max))
    return FhirPool(
        settings.database_read_url if replica else conninfo(settings),
        min_size=size[0],
        max_size=size[1],
        timeout=settings.db_pool_timeout,
        configure=configure,
        open=False,
        name="fhir-read" if replica else "fhir",
        reconnect_timeout=RECONNECT_TIMEOUT,
        search_slots=max(1, size[1] - settings.db_reserved_connections),
    )
