"""The psycopg connection pool of one worker process, opened in the app's lifespan."""

from __future__ import annotations

from time import monotonic
from typing import Any

import psycopg
from psycopg import pq
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from fhir_server.settings import Settings

#: Seconds a failing reconnection keeps retrying (at about 0, 1, 3 and 5 s) before the
#: pool gives up until the next checkout starts a new attempt. psycopg_pool's default
#: (5 minutes of exponential backoff) left the server answering 503 for up to as long as
#: the outage had lasted after PostgreSQL came back (tests/integration/ops/test_faults.py).
RECONNECT_TIMEOUT = 5.0


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
    """A pool that never hands out a connection the server has already closed."""

    async def getconn(
            self, timeout: float | None = None,  # noqa: ASYNC109 (psycopg_pool's API)
    ) -> psycopg.AsyncConnection[Any]:
        """A connection, skipping (and replacing) the ones a database restart closed."""
        total = self.timeout if timeout is None else timeout
        deadline = monotonic() + total
        conn = await super().getconn(total)
        while _closed_by_server(conn):
            await self.putconn(conn)  # discarded; the pool opens a replacement
            left = deadline - monotonic()
            if left <= 0:
                raise PoolTimeout(f"couldn't get a connection after {total:.2f} sec")
            conn = await super().getconn(left)
        return conn


def make_pool(settings: Settings) -> AsyncConnectionPool:
    """A pool (not yet opened) whose connections are autocommit with a statement timeout.

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

    return FhirPool(
        conninfo(settings),
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_pool_timeout,
        configure=configure,
        open=False,
        name="fhir",
        reconnect_timeout=RECONNECT_TIMEOUT,
    )
