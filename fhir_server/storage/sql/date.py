"""Date values as conditions on ranges ``[low, high)`` (``idx_date``, ``_lastUpdated``
and composite date components); the prefixes' meaning is in ``fhir_server.search.date``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.search.date import Bound, DateValue, bound_text
from fhir_server.storage.sql.common import (
    Fragment,
    ParamKey,
    col,
    join,
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


#: prefix -> the search bounds its condition implies a matching range reaches: "from"
#: (its latest point is at or after the bound), "to" (its earliest at or before it).
_REACH = {
    "eq": (("from", "s"), ("to", "e")),
    "gt": (("from", "e"),),
    "ge": (("from", "s"),),
    "sa": (("from", "e"),),
    "lt": (("to", "s"),),
    "le": (("to", "e"),),
    "eb": (("to", "s"),),
    "ap": (("from", "s"), ("to", "e")),
}
#: A stored range as ``idx_date_span`` (V14) indexes it: closed and never inverted, so
#: the constructor cannot fail on any row and a span is never empty.
_SPAN = "tstzrange(least({low}, {high}), greatest({low}, {high}), '[]')"


def _order(bound: Bound, high: bool) -> tuple[int, Bound]:
    """Sort key of a search bound: an open low before, an open high after every date."""
    if bound is None:
        return (2 if high else 0, None)
    return (1, bound)


def overlap(values: Sequence[DateValue], low: sql.Composable,
            high: sql.Composable) -> Fragment | None:
    """A condition every range matching all of ``values`` meets, that the GiST index
    ``idx_date_span`` answers: its span overlaps ``[from, to]``; None unless the values
    bound a match on both sides (``eq``, ``ap``, ``ge..&lt..``).

    A btree on ``low`` or ``high`` reads every row on one side of one bound (all
    Encounters before the end of a week); the span index reads about the matches.
    The exact conditions stay: this one only narrows. ``from`` past ``to`` (contradictory
    bounds) still holds for a match, whose span covers ``[to, from]``: the two are sorted.
    """
    reach: dict[str, list[tuple[int, Bound]]] = {"from": [], "to": []}
    for value in values:
        for side, which in _REACH.get(value.prefix, ()):
            is_high = which == "e"
            reach[side].append(_order(value.high if is_high else value.low, is_high))
    if not reach["from"] or not reach["to"]:
        return None
    lo, hi = sorted([max(reach["from"]), min(reach["to"])])
    if lo == (0, None) and hi == (2, None):
        return None  # open on both sides: every span overlaps
    texts = [bound_text(b[1], high=b[0] == 2) for b in (lo, hi)]
    span = sql.SQL(_SPAN).format(low=low, high=high)
    return sql.SQL("{} && tstzrange({}, {}, '[]')").format(span, _TS, _TS), texts


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
        condition = join_or([date_condition(v, low, high) for v in values])
        hint = overlap(values, low, high) if len(values) == 1 else None
        if hint is not None:
            condition = join([condition, hint], " AND ")
        return on_param(p, alias, condition)

    def range_predicate(self, p: ParamKey, groups: Sequence[Sequence[DateValue]],
                        alias: sql.Identifier) -> Fragment:
        """A row of parameter ``p`` matching every group (each: any of its values),
        e.g. the bounds of ``date=ge..&date=lt..``, with their common :func:`overlap`."""
        low, high = col(alias, "low"), col(alias, "high")
        parts = [join_or([date_condition(v, low, high) for v in g]) for g in groups]
        hint = overlap([g[0] for g in groups if len(g) == 1], low, high)
        if hint is not None:
            parts.append(hint)
        return on_param(p, alias, join(parts, " AND "))

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """Earliest start ascending, latest end descending."""
        return range_sort_key(alias, descending)


DATE = DateSql()
