"""Many writes in few round trips, for ``fhir-server import``.

The rows stored are those of the API: the same id, version, meta and no-op rules and
the same history rows as ``fhir_write``; only the transport differs.

- :func:`create_many` writes the resources of a batch that are new (a PUT or POST of
  an id not stored yet, the common case of a first import) in one statement,
  ``fhir_create_many`` (V15): the rows ``fhir_write`` would write for them, set-based;
- :func:`write_many` sends the other calls of the batch to ``fhir_write`` in one
  pipeline (one round trip instead of one per resource), without index rows;
- :func:`copy_index` then COPYs the index rows of the versions that were written. It
  stores exactly what ``fhir_write_index`` would have inserted from the same JSON (same
  column input functions, missing keys are NULL): ``fhir_write`` has already deleted a
  replaced version's old rows, and COPY is several times cheaper for PostgreSQL than
  ``jsonb_populate_recordset`` row by row.

Both must run on the connection (and inside the transaction) of the session whose
reads follow, so that those reads see the writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.adapt import Transformer

try:  # psycopg's COPY row formatter (C with psycopg[binary]); internal, hence the guard
    from psycopg._copy_base import format_row_text as _format_row
except ImportError:  # pragma: no cover
    _format_row = None

from fhir_server.search.index import TableRows

_WRITE = sql.SQL(
    "SELECT rid, version_id, last_updated, outcome"
    " FROM fhir_write(%s, %s, %s::jsonb, %s, %s, NULL::jsonb)"
)
# Binary arrays: the text array format would escape every quote of every body (in
# Python: ~0.07 ms per resource, a quarter of the importer's CPU).
_CREATE = sql.SQL(
    "SELECT ord, rid, last_updated FROM fhir_create_many(%b, %b, %b, %b)"
)
_COLUMNS = sql.SQL(
    "SELECT table_name::text, column_name::text FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND table_name LIKE 'idx\\_%%'"
    " AND column_name <> 'rid' ORDER BY table_name, ordinal_position"
)

#: index table short name (``token``) -> its columns except ``rid``, read once per process
_columns_cache: dict[str, tuple[str, ...]] | None = None


@dataclass(frozen=True, slots=True)
class WriteCall:
    """The arguments of one ``fhir_write`` call (``content`` is JSON text)."""

    resource_type: str
    id: str
    content: str | None
    method: str
    if_match: int | None


@dataclass(frozen=True, slots=True)
class WriteRow:
    """What ``fhir_write`` answered for one call (``rid`` is None for ``absent``)."""

    rid: int | None
    version_id: int | None
    last_updated: datetime | None
    outcome: str


async def write_many(conn: psycopg.AsyncConnection[Any],
                     calls: Sequence[WriteCall]) -> list[WriteRow]:
    """Run ``fhir_write`` for each call, in order, in one pipelined round trip.

    Raises the first failing call's database error (the transaction is then aborted).
    """
    if not calls:
        return []
    params = [(c.resource_type, c.id, c.content, c.method, c.if_match) for c in calls]
    out: list[WriteRow] = []
    async with conn.cursor() as cur:
        await cur.executemany(_WRITE, params, returning=True)
        while True:
            row = await cur.fetchone()
            assert row is not None  # fhir_write always returns one row
            out.append(WriteRow(row[0], row[1], row[2], row[3]))
            if not cur.nextset():
                break
    return out


async def create_many(conn: psycopg.AsyncConnection[Any],
                      calls: Sequence[WriteCall]) -> dict[int, WriteRow]:
    """Create, in one statement, the resources of ``calls`` whose id is not stored yet.

    Only PUT and POST calls without If-Match are created; the answer maps the position
    of each call created to its row (version 1, ``created``). Every other call, and a
    key repeated in ``calls`` after its first call, is left for :func:`write_many`.
    """
    eligible = [k for k, c in enumerate(calls)
                if c.method in ("PUT", "POST") and c.if_match is None and c.content]
    if not eligible:
        return {}
    params = ([calls[k].resource_type for k in eligible], [calls[k].id for k in eligible],
              [calls[k].content for k in eligible], [calls[k].method for k in eligible])
    cur = await conn.execute(_CREATE, params)
    return {eligible[ord_ - 1]: WriteRow(rid, 1, last_updated, "created")
            for ord_, rid, last_updated in await cur.fetchall()}


async def index_columns(conn: psycopg.AsyncConnection[Any]) -> dict[str, tuple[str, ...]]:
    """The columns (without ``rid``) of every ``idx_*`` table, keyed by short name."""
    global _columns_cache
    if _columns_cache is None:
        cur = await conn.execute(_COLUMNS)
        found: dict[str, list[str]] = {}
        for table, column in await cur.fetchall():
            found.setdefault(table.removeprefix("idx_"), []).append(column)
        _columns_cache = {k: tuple(v) for k, v in found.items()}
    return _columns_cache


async def copy_index(conn: psycopg.AsyncConnection[Any],
                     rows: Iterable[tuple[int, TableRows]]) -> int:
    """COPY the index rows of freshly written versions: ``(rid, rows by table)`` pairs.

    One COPY per table, its rows formatted into one buffer by psycopg's own (C) row
    formatter: the bytes ``copy.write_row`` sends for the same values, without its
    per-row Python and ``await``. Returns the number of rows copied. A key without a
    table is a bug: ValueError.
    """
    by_table: dict[str, list[tuple[int, tuple[str, ...], list[tuple[Any, ...]]]]] = {}
    for rid, index in rows:
        for name, (names, found) in index.items():
            if found:
                by_table.setdefault(name, []).append((rid, names, found))
    if not by_table:
        return 0
    columns = await index_columns(conn)
    transformer = Transformer(conn)
    copied = 0
    async with conn.cursor() as cur:
        for table, parts in sorted(by_table.items()):
            cols = columns.get(table)
            if cols is None:
                raise ValueError(f"no index table idx_{table}")
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(f"idx_{table}"),
                sql.SQL(", ").join(sql.Identifier(c) for c in ("rid", *cols)))
            async with cur.copy(statement) as copy:
                if _format_row is None:  # (a psycopg without it: the public, slower way)
                    for rid, names, found in parts:
                        for row in _ordered(cols, names, found):
                            await copy.write_row((rid, *row))
                else:
                    out = bytearray()
                    for rid, names, found in parts:
                        for row in _ordered(cols, names, found):
                            _format_row((rid, *row), transformer, out)
                    await copy.write(out)
            copied += sum(len(found) for _, _, found in parts)
    return copied


#: (table columns, row names) -> each column's position in a row (None: not there)
_POSITIONS: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[int | None, ...]] = {}


def _ordered(cols: tuple[str, ...], names: tuple[str, ...],
             rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``rows`` (values in ``names`` order) in the order of the table's columns, NULL
    for a column the rows lack (as ``jsonb_populate_recordset`` leaves it)."""
    if cols == names:
        return rows
    key = (cols, names)
    positions = _POSITIONS.get(key)
    if positions is None:
        where = {name: i for i, name in enumerate(names)}
        positions = _POSITIONS[key] = tuple(where.get(c) for c in cols)
    return [tuple(None if i is None else row[i] for i in positions) for row in rows]
