"""Statements returning resources, fetched a few rows at a time within a byte budget.

A page of large resources (a thousand of 200 KB) must never be in a worker's memory at
once: the statement runs as a server-side cursor and its rows come in batches, and the
fetching stops at the first row whose JSON would bring the rows kept past the budget.
Whatever the budget, the first row is kept: a page always holds at least one resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from fhir_server.service.repository import content_bytes
from fhir_server.storage.sql.common import Fragment

#: The first batch: rows of unknown size, so few of them (4 of MAX_RESOURCE_BYTES at worst).
FIRST_ROWS = 4
#: What the later batches aim at: as many rows as the largest one seen fits in this.
BATCH_BYTES = 4 * 1024 * 1024
#: One name serves every call: calls on a connection run one after the other, and each
#: closes its cursor (a failed one is closed by the rollback of its (sub)transaction).
_CURSOR = sql.Identifier("fhir_rows")
_DECLARE = sql.SQL("DECLARE {} NO SCROLL CURSOR FOR ").format(_CURSOR)
_CLOSE = sql.SQL("CLOSE {}").format(_CURSOR)
#: Run with custom plans under ``statement_timeout`` (the general one when NULL), planned as a
#: plain statement would be (a cursor is otherwise planned for its first tenth of rows).
_SETTINGS = sql.SQL(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
    " set_config('cursor_tuple_fraction', '1', true),"
    " set_config('statement_timeout', coalesce(%s, current_setting('statement_timeout')),"
    " true)")


@dataclass(frozen=True, slots=True)
class Fetched:
    """The rows kept, in the statement's order, and the first row left out (None if
    every row was kept)."""

    rows: list[tuple[Any, ...]]
    left: tuple[Any, ...] | None


async def rows_within(conn: psycopg.AsyncConnection, statement: Fragment, limit: int,
                      content: int, max_bytes: int,
                      statement_timeout: str | None = None) -> Fetched:
    """The rows of ``statement`` (which returns at most ``limit``) whose JSON, in column
    ``content``, stays within ``max_bytes`` together; the first is always kept.

    Everything up to the first batch goes in one round trip, and the batch that reaches
    ``limit`` goes with the cursor's close and the commit: a page of up to
    ``FIRST_ROWS`` rows costs one round trip, as a plain statement does."""
    page = PageRows(max_bytes, content)
    fetched = 0
    batch = min(limit, FIRST_ROWS)
    async with conn.pipeline(), conn.transaction():
        await conn.execute(_SETTINGS, (statement_timeout,), prepare=False)
        await conn.execute(sql.Composed([_DECLARE, statement[0]]), statement[1],
                           prepare=False)
        pending: psycopg.AsyncCursor[Any] | None = None
        while True:
            fetched += batch
            cur = await conn.execute(_fetch(batch), prepare=False)
            if fetched >= limit:
                await conn.execute(_CLOSE, prepare=False)
                pending = cur  # its rows are read once the commit is through
                break
            rows = await cur.fetchall()
            if page.take(rows) or len(rows) < batch:
                await conn.execute(_CLOSE, prepare=False)
                break
            batch = min(limit - fetched, max(1, BATCH_BYTES // max(page.largest, 1)))
    if pending is not None:
        page.take(await pending.fetchall())
    return Fetched(page.rows, page.left)


class PageRows:
    """Rows kept so far within a byte budget."""

    def __init__(self, max_bytes: int, content: int) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.left: tuple[Any, ...] | None = None
        self.largest = 0
        self._used = 0
        self._max_bytes = max_bytes
        self._content = content

    def take(self, rows: list[tuple[Any, ...]]) -> bool:
        """Keep ``rows`` in order until one does not fit; True if one did not."""
        for row in rows:
            size = content_bytes(row[self._content])
            if self.rows and self._used + size > self._max_bytes:
                self.left = row
                return True
            self.rows.append(row)
            self._used += size
            self.largest = max(self.largest, size)
        return False


def _fetch(rows: int) -> sql.Composed:
    return sql.SQL("FETCH FORWARD {} FROM {}").format(sql.Literal(rows), _CURSOR)
