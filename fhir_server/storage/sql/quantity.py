"""Quantity values as conditions on ``idx_quantity`` rows (units compared literally)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.search.number import NumberValue
from fhir_server.search.quantity import QuantityValue
from fhir_server.storage.sql.common import (
    Fragment,
    ParamKey,
    col,
    join_or,
    on_param,
    range_sort_key,
)
from fhir_server.storage.sql.number import number_condition


def quantity_condition(value: QuantityValue, alias: sql.Identifier) -> Fragment:
    """The condition for one quantity value on row ``alias``."""
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if value.number is not None:
        assert value.prefix is not None
        cond, cond_params = number_condition(NumberValue(value.prefix, value.number),
                                             col(alias, "low"), col(alias, "high"))
        parts.append(cond)
        params.extend(cond_params)
    if value.system is not None:
        parts.append(sql.SQL("{} = %s").format(col(alias, "system")))
        params.append(value.system)
    if value.code is not None:
        if value.system is not None:
            parts.append(sql.SQL("{} = %s").format(col(alias, "code")))
            params.append(value.code)
        else:
            parts.append(sql.SQL("({} = %s OR {} = %s)").format(col(alias, "code"),
                                                                 col(alias, "unit")))
            params.extend([value.code, value.code])
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts)), params


class QuantitySql:
    """``idx_quantity``."""

    table = "idx_quantity"

    def predicate(self, p: ParamKey, modifier: str | None, values: Sequence[Any],
                  alias: sql.Identifier) -> Fragment:
        """A row of parameter ``p`` matching any of ``values``."""
        return on_param(p, alias, join_or([quantity_condition(v, alias) for v in values]))

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """Smallest low ascending, largest high descending (units are not compared)."""
        return range_sort_key(alias, descending)


QUANTITY = QuantitySql()
