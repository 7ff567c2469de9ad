"""Date values as conditions on ranges ``[low, high)`` (``idx_date``, ``_lastUpdated``
and composite date components); the prefixes' meaning is in ``fhir_server.search.date``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.search.date import DateValue, bound_text
from fhir_server.storage.sql.common import (
    Fragment,
    ParamKey,
    col,
    join_or,
    on_param,
    range_sort_key,
)

_TS = sql.SQL("%s::timestamptz")
#: prefix -> (template, which search bounds fill its placeholders)
_TEMPLATES = {
    "eq": ("({low} >= {ts} AND {high} <= {ts})", ("s", "e")),
    "ne": ("({low} < {ts} OR {high} > {ts})", ("s", "e")),
    "gt": ("{high} > {ts}", ("e",)),
    "lt": ("{low} < {ts}", ("s",)),
    "ge": ("{high} > {ts}", ("s",)),
    "le": ("{low} < {ts}", ("e",)),
    "sa": ("{low} >= {ts}", ("e",)),
    "eb": ("{high} <= {ts}", ("s",)),
    "ap": ("({low} < {ts} AND {high} > {ts})", ("e", "s")),
}


def date_condition(value: DateValue, low: sql.Composable, high: sql.Composable) -> Fragment:
    """The condition that a target range ``[low, high)`` (timestamptz expressions)
    matches ``value``."""
    template, bounds = _TEMPLATES[value.prefix]
    texts = {"s": bound_text(value.low, high=False), "e": bound_text(value.high, high=True)}
    return (sql.SQL(template).format(low=low, high=high, ts=_TS), [texts[b] for b in bounds])


class DateSql:
    """``idx_date``."""

    table = "idx_date"

    def predicate(self, p: ParamKey, modifier: str | None, values: Sequence[Any],
                  alias: sql.Identifier) -> Fragment:
        """A row of parameter ``p`` matching any of ``values``."""
        low, high = col(alias, "low"), col(alias, "high")
        return on_param(p, alias, join_or([date_condition(v, low, high) for v in values]))

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """Earliest start ascending, latest end descending."""
        return range_sort_key(alias, descending)


DATE = DateSql()
