"""The bare read baseline: Starlette + one psycopg pool + the server's own read query.

One route, ``GET /fhir/Patient/{id}``, runs exactly the SELECT of
``fhir_server.storage.repository`` and sends the stored ``content`` text as it is, with
the server's media type. No validation, negotiation, ETag or error rendering: it is the
floor the server's read path is compared with (``bench/read.py``).

The pool is configured like the server's (autocommit, statement timeout, ``DB_POOL_MIN``
and ``DB_POOL_MAX`` per worker, defaults 2 and 10), so that both hold the same number of
connections. Run it with::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_x \\
        .venv/bin/python -m bench.baseline --port 8081 --workers 2
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import psycopg
import uvicorn
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

#: The server's read query (``fhir_server/storage/repository.py``), word for word.
READ_SQL = (
    "SELECT version_id, last_updated, deleted, content::text FROM resource"
    " WHERE resource_type = %s AND id = %s"
)
#: The server's media type for JSON answers.
MEDIA_TYPE = "application/fhir+json; charset=utf-8"


def make_pool(url: str, min_size: int, max_size: int,
              statement_timeout_ms: int) -> AsyncConnectionPool:
    """A pool set up as the server's: autocommit connections with a statement timeout."""

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await conn.set_autocommit(True)
        if statement_timeout_ms:
            await conn.execute("SELECT set_config('statement_timeout', %s, false)",
                               (f"{statement_timeout_ms}ms",))

    return AsyncConnectionPool(url, min_size=min_size, max_size=max_size, timeout=10.0,
                               configure=configure, open=False, name="baseline")


def create_app(url: str | None = None, min_size: int | None = None,
               max_size: int | None = None) -> Starlette:
    """The baseline application; settings default to the server's environment variables."""
    database_url = url or os.environ["DATABASE_URL"]
    pool = make_pool(
        database_url,
        min_size if min_size is not None else int(os.environ.get("DB_POOL_MIN", "2")),
        max_size if max_size is not None else int(os.environ.get("DB_POOL_MAX", "10")),
        int(os.environ.get("DB_STATEMENT_TIMEOUT_MS", "30000")),
    )

    async def read(request: Request) -> Response:
        async with pool.connection() as conn:
            cur = await conn.execute(READ_SQL, ("Patient", request.path_params["id"]))
            row = await cur.fetchone()
        if row is None or row[2]:
            return Response(status_code=404)
        return Response(row[3], media_type=MEDIA_TYPE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=True, timeout=30.0)
        try:
            yield
        finally:
            await pool.close()

    return Starlette(routes=[Route("/fhir/Patient/{id}", read, methods=["GET"])],
                     lifespan=lifespan)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the baseline with uvicorn, configured like ``fhir-server serve``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if "DATABASE_URL" not in os.environ:
        parser.error("set DATABASE_URL")
    uvicorn.run("bench.baseline:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, access_log=False,
                log_level=os.environ.get("LOG_LEVEL", "warning").lower())


if __name__ == "__main__":
    main()
