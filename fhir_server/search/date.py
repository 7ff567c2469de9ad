"""Date search parameters: values as half-open UTC ranges ``[low, high)`` (``idx_date``).

Every date-like value is a range (R4 search.html, "date"): ``2020`` is all of 2020, a
Period runs from the start of its start to the end of its end, a Timing spans its outer
limits. Open ends are ``-infinity``/``infinity``. A search value is a range too, and each
prefix compares the search range ``[s, e)`` with a target ``[low, high)``:

* ``eq``: the search range contains the target: ``low >= s AND high <= e``
* ``ne``: it does not: ``low < s OR high > e``
* ``gt``: some of the target lies after the search range: ``high > e``
* ``lt``: some of it lies before the search range: ``low < s``
* ``ge``: some of it lies in or after the search range: ``high > s``
* ``le``: some of it lies in or before the search range: ``low < e``
* ``sa``: the target starts after the search range: ``low >= e``
* ``eb``: the target ends before the search range: ``high <= s``
* ``ap``: the target overlaps the search range widened at each end by 10 % of that
  end's distance from now: ``low < e' AND high > s'``

``ge``/``le`` are read as HAPI FHIR does ("the range above the search value" starts at
the search value, so ``ge2020`` is anything in 2020 or later). Read with the range above
starting after the whole search range, the specification's "gt or contained" would
leave out a Period that straddles 2020-01-01 yet ends inside 2020; for single instants
both readings agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext, refuse_modifier

#: The comparison prefixes of ordered parameter types (number, date, quantity).
PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})

#: A moment of a range; None is an open end (-infinity as a low, infinity as a high).
Bound = datetime | None

_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def parse_prefix(value: str) -> tuple[str, str]:
    """Split the comparison prefix off an ordered search value.

    ``gt2020`` -> ``("gt", "2020")``; without a prefix the prefix is ``eq``. Only the
    nine lower-case prefixes of the specification are recognised.
    """
    if len(value) >= 2 and value[:2] in PREFIXES:
        return value[:2], value[2:]
    return "eq", value


def date_range(value: str) -> tuple[Bound, Bound]:
    """``[low, high)`` in UTC for a FHIR date, dateTime or instant, by its precision.

    ``2020`` is all of 2020, ``2020-05-01T10:00`` the whole minute, ``...:00.5`` a tenth
    of a second. A value without a time zone is taken as UTC. A bound beyond what
    ``datetime`` holds (year 9999's end, offsets at year 1) is None, i.e. open.
    Raises ValueError when the value is malformed or not a calendar date.
    """
    # An unescaped '+' in a query string arrives as a space.
    match = _DATE.fullmatch(value.strip().replace(" ", "+"))
    if match is None:
        raise ValueError(f"{value!r} is not a FHIR date, dateTime or instant")
    g = match.groupdict()
    tz = UTC
    if g["tz"] and g["tz"] != "Z":
        sign = 1 if g["tz"][0] == "+" else -1
        hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
        if hours > 14 or minutes > 59:
            raise ValueError(f"{value!r} has an invalid time zone offset")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    fraction = g["f"] or ""
    try:
        start = datetime(
            int(g["y"]), int(g["m"] or 1), int(g["d"] or 1), int(g["H"] or 0),
            int(g["M"] or 0), int(g["S"] or 0), int((fraction + "000000")[:6]), tzinfo=tz,
        )
    except ValueError:
        raise ValueError(f"{value!r} is not a valid calendar date or time") from None
    try:
        end: Bound = _end(start, g, fraction)
    except (ValueError, OverflowError):  # past 9999-12-31: open above
        end = None
    return _utc(start, high=False), (None if end is None else _utc(end, high=True))


def _end(start: datetime, g: dict[str, Any], fraction: str) -> datetime:
    if g["m"] is None:
        return start.replace(year=start.year + 1)
    if g["d"] is None:
        total = start.month  # months since January, plus one
        return start.replace(year=start.year + total // 12, month=total % 12 + 1)
    if g["H"] is None:
        return start + timedelta(days=1)
    if g["S"] is None:
        return start + timedelta(minutes=1)
    if not fraction:
        return start + timedelta(seconds=1)
    # PostgreSQL keeps microseconds: finer fractions are one microsecond wide.
    return start + timedelta(microseconds=10 ** max(0, 6 - len(fraction)))


def _utc(moment: datetime, *, high: bool) -> Bound:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # Outside datetime's years once shifted to UTC: clamp to its limits, or open
        # (None) on the side where that is the truth.
        if moment.year == 1:
            return datetime.min.replace(tzinfo=UTC) if high else None
        return None if high else datetime.max.replace(tzinfo=UTC)


def node_range(node: Node) -> tuple[Bound, Bound] | None:
    """The range of one date-like value (date, dateTime, instant, Period, Timing).

    None when the node holds no usable date (malformed data is skipped, not fatal:
    validation is the place to reject it).
    """
    value = node.value
    if isinstance(value, str):  # date, dateTime, instant (or a date held as a string)
        return _try_range(value)
    if not isinstance(value, dict):
        return None
    if node.type == "Timing" or "event" in value or "repeat" in value:
        return _timing_range(value)
    return _period_range(value)


def _try_range(value: Any) -> tuple[Bound, Bound] | None:
    if not isinstance(value, str):
        return None
    try:
        return date_range(value)
    except ValueError:
        return None


def _period_range(period: dict[str, Any]) -> tuple[Bound, Bound] | None:
    start = _try_range(period.get("start"))
    end = _try_range(period.get("end"))
    if start is None and end is None:
        return None
    low = start[0] if start else None
    # The end's whole precision is inside the period: an end of 2020-05-31 covers that day.
    high = end[1] if end else None
    if low is not None and high is not None and high < low:
        high = low  # an inverted period: keep it findable at its start
    return low, high


def _timing_range(timing: dict[str, Any]) -> tuple[Bound, Bound] | None:
    # Only the outer limits matter (R4 search.html: "the specified scheduling details
    # are ignored"), so one range from the earliest to the latest moment.
    ranges = [r for r in (_try_range(e) for e in timing.get("event") or []) if r]
    repeat = timing.get("repeat")
    if isinstance(repeat, dict) and isinstance(repeat.get("boundsPeriod"), dict):
        bounds = _period_range(repeat["boundsPeriod"])
        if bounds is not None:
            ranges.append(bounds)
    if not ranges:
        return None
    lows, highs = [r[0] for r in ranges], [r[1] for r in ranges]
    low = None if None in lows else min(x for x in lows if x is not None)
    high = None if None in highs else max(x for x in highs if x is not None)
    return low, high


def bound_text(bound: Bound, *, high: bool) -> str:
    """A bound as PostgreSQL ``timestamptz`` input: ISO 8601 with offset, or ±infinity."""
    if bound is None:
        return "infinity" if high else "-infinity"
    return bound.isoformat()


def _approximate(s: Bound, e: Bound, now: datetime) -> tuple[Bound, Bound]:
    # "10% of the gap between now and the date" (R4 search.html, prefixes), each end
    # widened by its own distance from now; a search range including now is not widened.
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:
        s = None if s is None else s - abs(now - s) / 10
    except OverflowError:
        s = None
    try:
        e = None if e is None else e + abs(e - now) / 10
    except OverflowError:
        e = None
    return s, e


@dataclass(frozen=True, slots=True)
class DateValue:
    """A date search value: the prefix and the search range ``[low, high)`` in UTC
    (None: open), already widened for ``ap``."""

    prefix: str
    low: Bound
    high: Bound


def parse_date_value(raw: str, now: datetime | None, what: str = "date") -> DateValue:
    """``[prefix]date`` as a DateValue; BadRequest naming the problem otherwise."""
    prefix, text = parse_prefix(raw)
    try:
        low, high = date_range(text)
    except ValueError as exc:
        raise BadRequest(f"invalid {what} search value {raw!r}: {exc}") from None
    if prefix == "ap":
        low, high = _approximate(low, high, now or datetime.now(UTC))
    return DateValue(prefix, low, high)


class DateType:
    """The ``date`` parameter type: table ``idx_date``."""

    name: str = "date"
    columns: tuple[tuple[str, str], ...] = (("low", "timestamptz"), ("high", "timestamptz"))
    modifiers: frozenset[str] = frozenset()

    def rows(self, p: int, nodes: list[Node], ctx: IndexContext) -> list[tuple[Any, ...]]:
        """One ``(p, low, high)`` row per distinct date, Period or Timing range."""
        out: list[tuple[Any, ...]] = []
        for node in nodes:
            bounds = node_range(node)
            if bounds is None:
                continue
            row = (p, bound_text(bounds[0], high=False), bound_text(bounds[1], high=True))
            if row not in out:
                out.append(row)
        return out

    def parse(self, p: int, modifier: str | None, raw: str, ctx: ParseContext) -> DateValue:
        """``[prefix]date`` (``ge2020-01``, ``lt2021-03-04T10:00:00Z``)."""
        refuse_modifier(self.name, modifier, self.modifiers)
        return parse_date_value(raw, ctx.now)


#: The date parameter type.
DATE = DateType()
