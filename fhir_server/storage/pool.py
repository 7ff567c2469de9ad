"""The psycopg connection pool of one worker process, opened in the app's lifespan."""

from __future__ import annotations

import psycopg
from psycopg_pool import AsyncConnectionPool

from fhir_server.settings import Settings


def conninfo(settings: Settings) -> str:
    """The libpq connection string the server uses."""
    return settings.database_url


def make_pool(settings: Settings) -> AsyncConnectionPool:
    """A pool (not yet opened) whose connections are autocommit with a statement timeout.

    No per-checkout health check: it would cost a round trip per request. A connection
    broken by a database restart fails its request with a 503 and is then discarded.

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

    return AsyncConnectionPool(
        conninfo(settings),
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_pool_timeout,
        configure=configure,
        open=False,
        name="fhir",
    )
