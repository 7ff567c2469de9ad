"""The history query: instance, type or system level, keyset-paged newest first."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from fhir_server.service.repository import HistoryPage, HistoryQuery, StoredVersion
from fhir_server.storage import cursor
from fhir_server.storage.errors import translated
from fhir_server.storage.fetch import rows_within
from fhir_server.storage.sql.common import Fragment

#: The SQL types of a history position: (last_updated, then the hid).
POSITION_TYPES = ("timestamptz",)
#: where the stored JSON is in a row of the page statement
_CONTENT = 5
#: The JSON of history row ``h``: a superseded version's own body, else (the current
#: version, whose body is stored once, in ``resource``) the current row's; NULL for a
#: deletion. One primary-key lookup, only for rows without a body.
HISTORY_CONTENT = sql.SQL(
    "coalesce(h.content::text, (SELECT c.content::text FROM resource c"
    " WHERE c.rid = h.rid AND h.method <> 'DELETE'))")


async def history_page(conn: psycopg.AsyncConnection, query: HistoryQuery,
                       visible: Fragment | None) -> HistoryPage:
    """A page of versions, newest first, by keyset on (last_updated, hid), within
    ``query.max_bytes`` of stored JSON (fetched in batches then)."""
    stmt, params, count_stmt = history_statement(query, visible)
    total: int | None = None
    cut = False
    with translated():
        if query.max_bytes is None:
            cur = await conn.execute(sql.Composed([stmt]), [*params, query.count + 1])
            rows = await cur.fetchall()
        else:
            got = await rows_within(conn, (stmt, [*params, query.count + 1]),
                                    query.count + 1, _CONTENT, query.max_bytes)
            rows, cut = got.rows, got.left is not None
        if count_stmt is not None:
            # Counting happens only on the first page, whose params have no cursor.
            cur = await conn.execute(sql.Composed([count_stmt]), params)
            count_row = await cur.fetchone()
            total = int(count_row[0]) if count_row else 0
    next_cursor: str | None = None
    if cut or len(rows) > query.count:
        rows = rows[: query.count]
        next_cursor = cursor.encode([rows[-1][3], rows[-1][6]])
    entries = [
        StoredVersion(r[0], r[1], r[2], r[3], r[4] == "DELETE", r[5], r[4], bool(r[7]))
        for r in rows
    ]
    return HistoryPage(entries, next_cursor, total, cut)


def history_statement(query: HistoryQuery, visible: Fragment | None = None
                      ) -> tuple[sql.Composable, list[Any], sql.Composable | None]:
    """(page statement without its LIMIT value, parameters, count statement or None).

    The page statement ends with ``LIMIT %s``: append the page size (plus one, to know
    whether there is a next page) to the parameters. Instance history also gets a
    count statement, since its total is cheap and useful. ``visible`` (a condition on
    a current resource row ``r``) keeps the versions of resources an access scope
    admits.
    """
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    if query.resource_type is not None:
        conditions.append(sql.SQL("h.resource_type = %s"))
        params.append(query.resource_type)
    if query.id is not None:
        conditions.append(sql.SQL("h.id = %s"))
        params.append(query.id)
    if query.since is not None:
        conditions.append(sql.SQL("h.last_updated >= %s"))
        params.append(query.since)
    if query.at is not None:
        start, end = query.at
        # Versions current at some moment of [start, end): begun before the end and not
        # superseded before the start.
        conditions.append(sql.SQL(
            "h.last_updated < %s AND NOT EXISTS (SELECT 1 FROM resource_history n"
            " WHERE n.resource_type = h.resource_type AND n.id = h.id"
            " AND n.version_id = h.version_id + 1 AND n.last_updated <= %s)"
        ))
        params += [end, start]
    if visible is not None:
        conditions.append(sql.SQL(
            "EXISTS (SELECT 1 FROM resource r WHERE r.resource_type = h.resource_type"
            " AND r.id = h.id AND {})").format(visible[0]))
        params += visible[1]
    count_where = sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true")
    count = None
    if query.id is not None and query.cursor is None:
        count = sql.SQL("SELECT count(*) FROM resource_history h WHERE {}").format(count_where)
    page_params = list(params)
    if query.cursor is not None:
        (moment, hid), _ = cursor.decode(query.cursor, POSITION_TYPES)
        conditions.append(sql.SQL("(h.last_updated, h.hid) < (%s::timestamptz, %s)"))
        page_params += [moment, hid]
    where = sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true")
    stmt = sql.SQL(
        "SELECT h.resource_type, h.id, h.version_id, h.last_updated, h.method,"
        " {content}, h.hid,"
        # a write after a deletion created the resource again (201, not 200)
        " h.method <> 'DELETE' AND h.version_id > 1 AND EXISTS (SELECT 1 FROM"
        " resource_history p WHERE p.resource_type = h.resource_type AND p.id = h.id"
        " AND p.version_id = h.version_id - 1 AND p.method = 'DELETE')"
        " FROM resource_history h WHERE {where}"
        " ORDER BY h.last_updated DESC, h.hid DESC LIMIT %s"
    ).format(where=where, content=HISTORY_CONTENT)
    return stmt, page_params, count
