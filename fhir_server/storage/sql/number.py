"""Number values as conditions on closed ranges ``[low, high]`` (``idx_number``, and the
number parts of quantities and composites); see ``fhir_server.search.number``."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from psycopg import sql

from fhir_server.search.number import NumberValue, approximate
from fhir_server.storage.sql.common import (
    Fragment,
    ParamKey,
    col,
    join_or,
    on_param,
    range_sort_key,
)

_N = sql.SQL("%s::numeric")
_TEMPLATES = {
    "eq": "({low} >= {n} AND {high} < {n})",
    "ne": "({low} < {n} OR {high} >= {n})",
    "gt": "{high} > {n}",
    "lt": "{low} < {n}",
    "ge": "{high} >= {n}",
    "le": "{low} <= {n}",
    "sa": "{low} > {n}",
    "eb": "{high} < {n}",
    "ap": "({low} <= {n} AND {high} >= {n})",
}


def number_condition(value: NumberValue, low: sql.Composable,
                     high: sql.Composable) -> Fragment:
    """The condition that a target ``[low, high]`` (numeric expressions) matches ``value``:
    ``eq``/``ne`` use the value's implicit range, ``ap`` ± 10 %, the others the exact
    value."""
    number = value.number
    params: list[Decimal]
    if value.prefix in ("eq", "ne"):
        params = [number.low, number.high]
    elif value.prefix == "ap":
        lowest, highest = approximate(number)
        params = [highest, lowest]
    else:
        params = [number.value]
    return sql.SQL(_TEMPLATES[value.prefix]).format(low=low, high=high, n=_N), list(params)


class NumberSql:
    """``idx_number``."""

    table = "idx_number"

    def predicate(self, p: ParamKey, modifier: str | None, values: Sequence[Any],
                  alias: sql.Identifier) -> Fragment:
        """A row of parameter ``p`` matching any of ``values``."""
        low, high = col(alias, "low"), col(alias, "high")
        return on_param(p, alias, join_or([number_condition(v, low, high) for v in values]))

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """Smallest low ascending, largest high descending."""
        return range_sort_key(alias, descending)


NUMBER = NumberSql()
