"""Keyset paging of searches: the sort keys, the rows after a cursor, the ORDER BY."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from fhir_server.storage.sql.common import Fragment, join

#: SQL type of each parameter type's sort value (to cast cursor values back).
SORT_SQL_TYPE = {"date": "timestamptz", "number": "numeric", "quantity": "numeric"}


@dataclass
class SortKey:
    """One ``_sort`` key compiled: the expression to order by and its SQL type."""

    expression: sql.Composable
    sql_type: str
    descending: bool
    join: Fragment | None = None



def keyset(sort: Sequence[SortKey], cursor: Sequence[object], backwards: bool) -> Fragment:
    """Rows strictly after (or before, ``backwards``) ``cursor`` in the sort order.

    ``cursor`` holds one value per sort key then the rid. NULL sort values come last in
    both directions (``NULLS LAST``), so nothing sorts after a NULL but its ties.
    """
    ors: list[Fragment] = []
    equal: list[Fragment] = []
    for key, value in zip(sort, cursor, strict=False):
        after_op = "<" if key.descending != backwards else ">"
        cast = sql.SQL(key.sql_type)
        if value is None:
            if backwards:
                ors.append(join([*equal, (sql.SQL("{} IS NOT NULL").format(key.expression),
                                          [])], " AND "))
            equal.append((sql.SQL("{} IS NULL").format(key.expression), []))
            continue
        step: Fragment = (sql.SQL("{} {} %s::{}").format(key.expression, sql.SQL(after_op),
                                                          cast), [value])
        if not backwards:
            step = (sql.SQL("({} OR {} IS NULL)").format(step[0], key.expression), step[1])
        ors.append(join([*equal, step], " AND "))
        equal.append((sql.SQL("{} = %s::{}").format(key.expression, cast), [value]))
    rid_op = "<" if backwards else ">"
    ors.append(join([*equal, (sql.SQL(f"r.rid {rid_op} %s"), [cursor[-1]])], " AND "))
    joined, params = join([(sql.SQL("({})").format(o[0]), o[1]) for o in ors], " OR ")
    return sql.SQL("({})").format(joined), params


def order_by(sort: Sequence[SortKey], backwards: bool) -> sql.Composable:
    """ORDER BY for the sort keys then rid, reversed when paging backwards."""
    parts: list[sql.Composable] = []
    for key in sort:
        descending = key.descending != backwards
        nulls = "NULLS FIRST" if backwards else "NULLS LAST"
        parts.append(sql.SQL("{} {} {}").format(
            key.expression, sql.SQL("DESC" if descending else "ASC"), sql.SQL(nulls)))
    parts.append(sql.SQL("r.rid DESC" if backwards else "r.rid ASC"))
    return sql.SQL(", ").join(parts)
