"""The history query: instance, type or system level, keyset-paged newest first."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from fhir_server.service.repository import HistoryQuery
from fhir_server.storage import cursor
from fhir_server.storage.sql.common import Fragment

#: The SQL types of a history position: (last_updated, then the hid).
POSITION_TYPES = ("timestamptz",)


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
        " h.content::text, h.hid,"
        # a write after a deletion created the resource again (201, not 200)
        " h.method <> 'DELETE' AND h.version_id > 1 AND EXISTS (SELECT 1 FROM"
        " resource_history p WHERE p.resource_type = h.resource_type AND p.id = h.id"
        " AND p.version_id = h.version_id - 1 AND p.method = 'DELETE')"
        " FROM resource_history h WHERE {}"
        " ORDER BY h.last_updated DESC, h.hid DESC LIMIT %s"
    ).format(where)
    return stmt, page_params, count
