"""Many writes in few round trips, for ``fhir-server import``.

The rows stored are those of the API: every resource still goes through ``fhir_write``
(same id, version, meta and no-op rules, same history row); only the transport differs.

- :func:`write_many` sends a batch of ``fhir_write`` calls in one pipeline (one round
  trip instead of one per resource), without index rows;
- :func:`copy_index` then COPYs the index rows of the versions that were written. It
  stores exactly what ``fhir_write_index`` would have inserted from the same JSON (same
  column input functions, missing keys are NULL): ``fhir_write`` has already deleted a
  replaced version's old rows, and COPY is several times cheaper for PostgreSQL than
  ``jsonb_populate_recordset`` row by row.

Both must run on the connection (and inside the transaction) of the session whose
reads follow, so that those reads see the writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.adapt import PyFormat, Transformer

from fhir_server.search.index import TableRows

_WRITE = sql.SQL(
    "SELECT rid, version_id, last_updated, outcome"
    " FROM fhir_write(%s, %s, %s::jsonb, %s, %s, NULL::jsonb)"
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

    One COPY per table, its data encoded here at once (what ``copy.write_row`` would
    send for the same values, without its per-value dispatch). Returns the number of
    rows copied. A key without a table is a bug: ValueError.
    """
    by_table: dict[str, list[tuple[int, tuple[str, ...], list[tuple[Any, ...]]]]] = {}
    for rid, index in rows:
        for name, (names, found) in index.items():
            if found:
                by_table.setdefault(name, []).append((rid, names, found))
    if not by_table:
        return 0
    columns = await index_columns(conn)
    encoding = conn.info.encoding
    copied = 0
    async with conn.cursor() as cur:
        for table, parts in sorted(by_table.items()):
            cols = columns.get(table)
            if cols is None:
                raise ValueError(f"no index table idx_{table}")
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(f"idx_{table}"),
                sql.SQL(", ").join(sql.Identifier(c) for c in ("rid", *cols)))
            lines: list[str] = []
            for rid, names, found in parts:
                lines.extend(_lines(str(rid), _positions(cols, names), found))
                copied += len(found)
            async with cur.copy(statement) as copy:
                await copy.write(("\n".join(lines) + "\n").encode(encoding))
    return copied


#: (table columns, row names) -> for each column, its value's position in a row (or None)
_POSITIONS: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[int | None, ...]] = {}


def _positions(cols: tuple[str, ...], names: tuple[str, ...]) -> tuple[int | None, ...]:
    key = (cols, names)
    found = _POSITIONS.get(key)
    if found is None:
        where = {name: i for i, name in enumerate(names)}
        found = _POSITIONS[key] = tuple(where.get(c) for c in cols)
    return found


def _lines(rid: str, positions: tuple[int | None, ...],
           rows: list[tuple[Any, ...]]) -> list[str]:
    """COPY text lines: ``rid``, then each column's value (``\\N``: a missing one)."""
    out = []
    for row in rows:
        fields = [rid]
        for i in positions:
            fields.append(_NULL if i is None else _field(row[i]))
        out.append("\t".join(fields))
    return out


_NULL = "\\N"
#: what COPY's text format escapes (as psycopg does)
_SPECIAL = re.compile(r"[\b\t\n\v\f\r\\]")
_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f",
            "\r": "\\r", "\\": "\\\\"}
_TEXT_DUMPERS = Transformer()


def _escape(match: re.Match[str]) -> str:
    return _ESCAPES[match.group(0)]


def _field(value: Any) -> str:
    """One value in COPY text format, as psycopg's text dumpers make it."""
    if value is None:
        return _NULL
    kind = type(value)
    if kind is str:
        return _SPECIAL.sub(_escape, value) if _SPECIAL.search(value) else value
    if kind is int:
        return str(value)
    dumped = _TEXT_DUMPERS.get_dumper(value, PyFormat.TEXT).dump(value)
    if dumped is None:
        return _NULL
    text = bytes(dumped).decode()
    return _SPECIAL.sub(_escape, text) if _SPECIAL.search(text) else text
