"""Complete search statements from a compiled Query: page, total, estimate, includes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from psycopg import sql

from fhir_server.storage.sql.common import Fragment
from fhir_server.storage.sql.compile import Query
from fhir_server.storage.sql.paging import keyset, order_by, walked_page

#: The columns every statement returns for a resource row (storage relies on the order).
ROW = sql.SQL("r.rid, r.resource_type, r.id, r.version_id, r.last_updated, r.content::text")


def page(query: Query, limit: int, cursor: Sequence[Any] | None,
         backwards: bool) -> Fragment:
    """One page of matches (``limit`` rows), after/before a keyset cursor.

    Rows are picked by rid and sort values first and only the page's rows are joined
    back for their content ("late materialisation"): converting every match's JSONB to
    text before the top-N sort cost half of a broad sorted search.
    """
    joins = [k.join for k in query.sort if k.join is not None]
    params: list[Any] = [p for j in joins for p in j[1]]
    where, where_params = query.where
    params += where_params
    if cursor is not None:
        condition, cursor_params = keyset(query.sort, cursor, backwards)
        where = sql.SQL("{} AND {}").format(where, condition)
        params += cursor_params
    names = [sql.Identifier(f"k{i}") for i in range(len(query.sort))]
    inner_keys = sql.SQL("").join(sql.SQL(", {} AS {}").format(k.expression, n)
                                  for k, n in zip(query.sort, names, strict=True))
    inner = sql.SQL("SELECT r.rid{inner_keys} FROM resource r {joins} WHERE {where}"
                    " ORDER BY {order} LIMIT %s").format(
        inner_keys=inner_keys, joins=sql.SQL(" ").join(j[0] for j in joins), where=where,
        order=order_by(query.sort, backwards))
    params.append(limit)
    if len(query.sort) == 1:
        walked = walked_page(query.where, query.sort[0], ROW, limit, cursor, backwards,
                             (inner, params))
        if walked is not None:
            return walked
    # Sort values travel as text: psycopg cannot load timestamptz 'infinity' (open
    # periods) into datetime; the keyset cursor casts them back in SQL.
    outer_keys = sql.SQL("").join(sql.SQL(", (k.{})::text").format(n) for n in names)
    outer_sort = [replace(key, expression=sql.SQL("k.{}").format(n), join=None)
                  for key, n in zip(query.sort, names, strict=True)]
    statement = sql.SQL(
        "SELECT {row}{outer_keys} FROM ({inner}) k JOIN resource r ON r.rid = k.rid"
        " ORDER BY {outer_order}"
    ).format(row=ROW, outer_keys=outer_keys, inner=inner,
             # The same order over the subquery's columns (r.rid = k.rid there).
             outer_order=order_by(outer_sort, backwards))
    return statement, params


def total(query: Query) -> Fragment:
    """The exact number of matches."""
    return sql.SQL("SELECT count(*) FROM resource r WHERE {}").format(query.where[0]), \
        list(query.where[1])


def estimate(query: Query) -> Fragment:
    """The planner's estimate of the number of matches (EXPLAIN, nothing executed)."""
    return sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM resource r WHERE {}").format(
        query.where[0]), list(query.where[1])


def include_forward(rids: Sequence[int], p_values: Sequence[int],
                    target_type: str | None, limit: int,
                    visible: Fragment | None = None) -> Fragment:
    """Resources referenced by ``rids`` through the reference parameters ``p_values``
    (and passing ``visible``, a condition on ``r``)."""
    typed = sql.SQL(" AND a.target_type = %s") if target_type is not None else sql.SQL("")
    seen = sql.SQL(" AND {}").format(visible[0]) if visible is not None else sql.SQL("")
    # The targets are made distinct before their rows are joined: many sources refer to
    # the same few targets (every Observation to its Patient), and DISTINCT over whole
    # rows would sort their content.
    statement = sql.SQL(
        "SELECT {row} FROM (SELECT DISTINCT a.target_type, a.target_id FROM idx_reference a"
        " WHERE a.rid = ANY(%s) AND a.p = ANY(%s){typed}) a JOIN resource r"
        " ON r.resource_type = a.target_type AND r.id = a.target_id"
        " WHERE NOT r.deleted{seen} LIMIT %s"
    ).format(row=ROW, typed=typed, seen=seen)
    params: list[Any] = [list(rids), list(p_values)]
    if target_type is not None:
        params.append(target_type)
    return statement, [*params, *(visible[1] if visible else []), limit]


def include_reverse(targets: Sequence[tuple[str, str]], p_values: Sequence[int],
                    limit: int, visible: Fragment | None = None) -> Fragment:
    """Resources referring to any of ``targets`` (type, id) through ``p_values`` (and
    passing ``visible``, a condition on ``r``)."""
    types = [t for t, _ in targets]
    ids = [i for _, i in targets]
    condition = sql.SQL(" AND {}").format(visible[0]) if visible is not None else sql.SQL("")
    statement = sql.SQL(
        "SELECT DISTINCT {row} FROM idx_reference a JOIN resource r ON r.rid = a.rid"
        " JOIN unnest(%s::text[], %s::text[]) AS t(type, id)"
        " ON a.target_type = t.type AND a.target_id = t.id"
        " WHERE a.p = ANY(%s) AND NOT r.deleted{cond} LIMIT %s"
    ).format(row=ROW, cond=condition)
    return statement, [types, ids, list(p_values), *(visible[1] if visible else []), limit]
