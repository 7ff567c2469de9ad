"""Complete search statements from a compiled Query: page, total, estimate, includes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.search.base import Fragment
from fhir_server.search.compile import Query, keyset, order_by

#: The columns every statement returns for a resource row (storage relies on the order).
ROW = sql.SQL("r.rid, r.resource_type, r.id, r.version_id, r.last_updated, r.content::text")


def page(query: Query, limit: int, cursor: Sequence[Any] | None,
         backwards: bool) -> Fragment:
    """One page of matches (``limit`` rows), after/before a keyset cursor."""
    joins = [k.join for k in query.sort if k.join is not None]
    params: list[Any] = [p for j in joins for p in j[1]]
    where, where_params = query.where
    params += where_params
    if cursor is not None:
        condition, cursor_params = keyset(query.sort, cursor, backwards)
        where = sql.SQL("{} AND {}").format(where, condition)
        params += cursor_params
    # Sort values travel as text: psycopg cannot load timestamptz 'infinity' (open
    # periods) into datetime; the keyset cursor casts them back in SQL.
    keys = sql.SQL("").join(sql.SQL(", ({})::text").format(k.expression)
                            for k in query.sort)
    statement = sql.SQL("SELECT {row}{keys} FROM resource r {joins} WHERE {where}"
                        " ORDER BY {order} LIMIT %s").format(
        row=ROW, keys=keys, joins=sql.SQL(" ").join(j[0] for j in joins), where=where,
        order=order_by(query.sort, backwards))
    return statement, [*params, limit]


def total(query: Query) -> Fragment:
    """The exact number of matches."""
    return sql.SQL("SELECT count(*) FROM resource r WHERE {}").format(query.where[0]), \
        list(query.where[1])


def estimate(query: Query) -> Fragment:
    """The planner's estimate of the number of matches (EXPLAIN, nothing executed)."""
    return sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM resource r WHERE {}").format(
        query.where[0]), list(query.where[1])


def include_forward(rids: Sequence[int], p_values: Sequence[int],
                    target_type: str | None, limit: int) -> Fragment:
    """Resources referenced by ``rids`` through the reference parameters ``p_values``."""
    condition = sql.SQL("")
    params: list[Any] = [list(rids), list(p_values)]
    if target_type is not None:
        condition = sql.SQL(" AND a.target_type = %s")
        params.append(target_type)
    statement = sql.SQL(
        "SELECT DISTINCT {row} FROM idx_reference a JOIN resource r"
        " ON r.resource_type = a.target_type AND r.id = a.target_id"
        " WHERE a.rid = ANY(%s) AND a.p = ANY(%s){cond} AND NOT r.deleted LIMIT %s"
    ).format(row=ROW, cond=condition)
    return statement, [*params, limit]


def include_reverse(targets: Sequence[tuple[str, str]], p_values: Sequence[int],
                    limit: int) -> Fragment:
    """Resources referring to any of ``targets`` (type, id) through ``p_values``."""
    types = [t for t, _ in targets]
    ids = [i for _, i in targets]
    statement = sql.SQL(
        "SELECT DISTINCT {row} FROM idx_reference a JOIN resource r ON r.rid = a.rid"
        " JOIN unnest(%s::text[], %s::text[]) AS t(type, id)"
        " ON a.target_type = t.type AND a.target_id = t.id"
        " WHERE a.p = ANY(%s) AND NOT r.deleted LIMIT %s"
    ).format(row=ROW)
    return statement, [types, ids, list(p_values), limit]
