"""Composite values as conditions on ``idx_composite`` rows: the first component's hash
``h1`` with the second's hash ``h2`` or its number or date range."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.search.composite import CompositeValue
from fhir_server.storage.sql.common import Fragment, ParamKey, col, join_or, min_max, p_is
from fhir_server.storage.sql.date import date_condition
from fhir_server.storage.sql.number import number_condition


def _second(value: CompositeValue, alias: sql.Identifier) -> Fragment:
    parts: list[Fragment] = []
    if value.number is not None:
        parts.append(number_condition(value.number, col(alias, "low"), col(alias, "high")))
    if value.date is not None:
        parts.append(date_condition(value.date, col(alias, "dlow"), col(alias, "dhigh")))
    if value.h2 is not None:
        parts.append((sql.SQL("{} = %s").format(col(alias, "h2")), [value.h2]))
    return (sql.SQL("({})").format(sql.SQL(" AND ").join(f for f, _ in parts)),
            [x for _, params in parts for x in params])


class CompositeSql:
    """``idx_composite``."""

    table = "idx_composite"

    def predicate(self, p: ParamKey, modifier: str | None, values: Sequence[Any],
                  alias: sql.Identifier) -> Fragment:
        """A row of parameter ``p`` whose two components match one of ``values``."""
        composites = [v for v in values if isinstance(v, CompositeValue)]
        conditions: list[Fragment] = []
        for value in composites:
            if not value.paired:
                cond, params = _second(value, alias)
                conditions.append((sql.SQL("({} = %s AND {})").format(col(alias, "h1"), cond),
                                   [value.h1, *params]))
        pairs = list(dict.fromkeys((v.h1, v.h2) for v in composites if v.paired))
        if pairs:
            conditions.append((sql.SQL(
                "({}, {}) IN (SELECT * FROM unnest(%s::bigint[], %s::bigint[]))"
            ).format(col(alias, "h1"), col(alias, "h2")),
                [[a for a, _ in pairs], [b for _, b in pairs]]))
        where, params = join_or(conditions)
        key = p_is(alias, p)
        return sql.SQL("{} AND {}").format(key[0], where), [*key[1], *params]

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """Composite parameters are not sortable: the first hash stands in (arbitrary)."""
        return min_max(descending, col(alias, "h1"))


COMPOSITE = CompositeSql()
