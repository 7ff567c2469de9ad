"""Date predicates run in PostgreSQL against rows written through fhir_write_index.

Expectations are computed here in Python from each value's first and last instant,
independently of the module's SQL.
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Node, ParseContext
from fhir_server.search.date import DATE
from fhir_server.storage.sql.date import DATE as DATE_SQL
from tests.integration.storage.sql.scratch import PREFIXES, Param, scratch_fixture

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
CTX = ParseContext(now=NOW)
P = 424242
US = timedelta(microseconds=1)
MIN = datetime.min.replace(tzinfo=UTC)
MAX = datetime.max.replace(tzinfo=UTC)


# -- scratch database ------------------------------------------------------------------

db = scratch_fixture()
PARAM = Param(P, CTX)
load, matching = PARAM.load, PARAM.matching


# -- independent model: a value is its first and last instant ----------------------------

@dataclass(frozen=True)
class Span:
    """All instants from ``first`` to ``last`` inclusive (None: unbounded)."""

    first: datetime | None
    last: datetime | None


def _add_unit(moment: datetime, unit: str) -> datetime:
    if unit == "year":
        return moment.replace(year=moment.year + 1)
    if unit == "month":
        year, month = divmod(moment.month, 12)
        return moment.replace(year=moment.year + year, month=month + 1)
    return moment + {"day": timedelta(days=1), "minute": timedelta(minutes=1),
                     "second": timedelta(seconds=1), "milli": timedelta(milliseconds=1)}[unit]


def render(local: datetime, unit: str, offset_minutes: int) -> tuple[str, Span]:
    """A FHIR date text of ``local`` at precision ``unit`` and its true span in UTC."""
    sign = "-" if offset_minutes < 0 else "+"
    tz = f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    if tz == "+00:00" and local.minute % 2:
        tz = "Z"
    start = {
        "year": local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0),
        "month": local.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        "day": local.replace(hour=0, minute=0, second=0, microsecond=0),
        "minute": local.replace(second=0, microsecond=0),
        "second": local.replace(microsecond=0),
        "milli": local.replace(microsecond=local.microsecond // 1000 * 1000),
    }[unit]
    text = {
        "year": f"{start.year:04d}", "month": f"{start.year:04d}-{start.month:02d}",
        "day": start.strftime("%Y-%m-%d"), "minute": start.strftime("%Y-%m-%dT%H:%M") + tz,
        "second": start.strftime("%Y-%m-%dT%H:%M:%S") + tz,
        "milli": start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{start.microsecond // 1000:03d}" + tz,
    }[unit]
    shift = timedelta(minutes=offset_minutes) if unit in ("minute", "second", "milli") else (
        timedelta(0))
    first = start.replace(tzinfo=UTC) - shift
    return text, Span(first, _add_unit(start, unit).replace(tzinfo=UTC) - shift - US)


def expected(prefix: str, target: Span, search: Span) -> bool:
    """The R4 prefix semantics over first/last instants (ge/le as HAPI reads them)."""
    tf, tl = target.first or MIN, target.last or MAX
    sf, sl = search.first or MIN, search.last or MAX
    if prefix == "ap":
        sf = sf - abs(NOW - sf) / 10
        sl = sl + abs(sl - NOW) / 10
    return {
        "eq": sf <= tf and tl <= sl,          # search range contains the target
        "ne": not (sf <= tf and tl <= sl),
        "gt": tl > sl,                        # some of the target after the search range
        "lt": tf < sf,                        # some of the target before it
        "ge": tl >= sf,                       # some of the target in or after it
        "le": tf <= sl,                       # some of the target in or before it
        "sa": tf > sl,                        # the target starts after it
        "eb": tl < sf,                        # the target ends before it
        "ap": tf <= sl and tl >= sf,          # overlaps the widened range
    }[prefix]


UNITS = ("year", "month", "day", "minute", "second", "milli")
OFFSETS = (0, 60, -300, 330, 840, -720)


def _random_value(rng: random.Random) -> tuple[str, Span]:
    local = datetime(2018, 1, 1) + timedelta(seconds=rng.randrange(4 * 365 * 86400),
                                             microseconds=rng.randrange(10**6))
    return render(local, rng.choice(UNITS), rng.choice(OFFSETS))


def dataset() -> tuple[dict[int, list[Node]], dict[int, list[Span]]]:
    """About 400 resources: primitives, Periods (some open), Timings."""
    rng = random.Random(20240501)
    nodes: dict[int, list[Node]] = {}
    truth: dict[int, list[Span]] = {}
    for rid in range(1, 401):
        kind = rid % 5
        if kind in (0, 1):
            text, span = _random_value(rng)
            nodes[rid], truth[rid] = [Node(text, "dateTime")], [span]
        elif kind == 2:  # a Period, possibly open at one end
            (a, sa), (b, sb) = sorted((_random_value(rng), _random_value(rng)),
                                      key=lambda v: v[1].first or MIN)
            period: dict[str, str] = {"start": a, "end": b}
            first, last = sa.first, sb.last
            if rid % 15 == 2:
                del period["start"]
                first = None
            elif rid % 15 == 7:
                del period["end"]
                last = None
            nodes[rid] = [Node(period, "Period")]
            truth[rid] = [Span(first, last if last is None or first is None else
                               max(last, first))]
        elif kind == 3:  # a Timing: only its outer limits count
            values = [_random_value(rng) for _ in range(rng.randrange(1, 4))]
            spans = [v[1] for v in values]
            nodes[rid] = [Node({"event": [v[0] for v in values]}, "Timing")]
            truth[rid] = [Span(min(s.first for s in spans if s.first),
                               max(s.last for s in spans if s.last))]
        else:  # two values of one resource
            pair = [_random_value(rng), _random_value(rng)]
            nodes[rid] = [Node(v[0], "dateTime") for v in pair]
            truth[rid] = [v[1] for v in pair]
    return nodes, truth


loaded = PARAM.loaded_fixture(DATE, dataset)


def _expected_rids(truth: dict[int, list[Span]], prefix: str, search: Span) -> set[int]:
    return {rid for rid, spans in truth.items() if any(expected(prefix, t, search)
                                                        for t in spans)}


SEARCHES = [
    ("2020", None), ("2019-07", None), ("2020-02-29", None), ("2021-03-14T10:00Z", None),
    ("2020-05-01T10:00:30+02:00", None), ("2019-12-31T23:59:59.999-05:00", None),
]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("value", [s[0] for s in SEARCHES])
def test_grid(loaded: tuple[psycopg.Connection[Any], dict[int, list[Span]]], prefix: str,
              value: str) -> None:
    conn, truth = loaded
    search = _search_span(value)
    want = _expected_rids(truth, prefix, search)
    assert matching(conn, DATE, [prefix + value]) == want
    assert want or prefix in ("sa", "eb", "eq"), "the data should exercise every prefix"


def _search_span(value: str) -> Span:
    # Parse the search value independently: precision from its length and shape.
    text = value.replace("Z", "+00:00")
    if len(text) == 4:
        local, unit = datetime(int(text), 1, 1), "year"
    elif len(text) == 7:
        local, unit = datetime(int(text[:4]), int(text[5:]), 1), "month"
    elif len(text) == 10:
        local, unit = datetime.fromisoformat(text), "day"
    else:
        moment = datetime.fromisoformat(text)
        offset = moment.utcoffset() or timedelta(0)
        unit = "milli" if "." in text else ("second" if text.count(":") >= 4 else "minute")
        return render(moment.replace(tzinfo=None), unit, int(offset.total_seconds() // 60))[1]
    return render(local, unit, 0)[1]


def test_several_values_are_or_ed(
        loaded: tuple[psycopg.Connection[Any], dict[int, list[Span]]]) -> None:
    conn, truth = loaded
    want = (_expected_rids(truth, "lt", _search_span("2018-06"))
            | _expected_rids(truth, "sa", _search_span("2021-06")))
    assert matching(conn, DATE, ["lt2018-06", "sa2021-06"]) == want


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.datetimes(min_value=datetime(2017, 6, 1), max_value=datetime(2022, 6, 1)),
       st.sampled_from(UNITS), st.sampled_from((*OFFSETS, -210, 545)),
       st.sampled_from(PREFIXES))
def test_property(loaded: tuple[psycopg.Connection[Any], dict[int, list[Span]]],
                  local: datetime, unit: str, offset: int, prefix: str) -> None:
    conn, truth = loaded
    text, search = render(local, unit, offset)
    assert matching(conn, DATE, [prefix + text]) == _expected_rids(truth, prefix, search)


# -- the specification's examples, on a fresh small set ----------------------------------

EXAMPLES: dict[int, Node] = {
    1: Node("2013-01-14T00:00:00Z", "dateTime"),
    2: Node("2013-01-14T10:00:00Z", "dateTime"),
    3: Node("2013-01-15T00:00:00Z", "dateTime"),
    4: Node("2013-01-14", "date"),
    5: Node({"start": "2013-01-21"}, "Period"),                 # from 21-Jan 2013 onwards
    6: Node({"start": "2013-03-15"}, "Period"),                 # from 15-Mar 2013 onwards
    7: Node({"end": "2013-01-21"}, "Period"),                   # before and including 21-Jan
    8: Node("2020-05-01", "date"),
    9: Node({"start": "2020-04-15", "end": "2020-05-10"}, "Period"),
    10: Node({"start": "2020-05-02", "end": "2020-05-31"}, "Period"),
    11: Node("2020-05-31T23:30:00-05:00", "dateTime"),          # 2020-06-01 in UTC
    12: Node({"event": ["2020-05-03"], "repeat": {"boundsPeriod": {"end": "2020-05-20"}}},
             "Timing"),
}


@pytest.fixture(scope="module")
def examples(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    load(db, DATE, {rid + 1000: [node] for rid, node in EXAMPLES.items()})
    return db


@pytest.mark.parametrize(("value", "rids"), [
    ("eq2013-01-14", {1, 2, 4}),
    ("ne2013-01-14", {3, 5, 6, 7, 8, 9, 10, 11, 12}),
    ("lt2013-01-14T10:00", {1, 4, 7, 12}),       # 14-Jan includes the part before 10am
    ("gt2013-01-14T10:00", {3, 4, 5, 6, 7, 8, 9, 10, 11, 12}),
    ("ge2013-03-14", {5, 6, 8, 9, 10, 11, 12}),  # "from 21-Jan 2013 onwards" is included
    ("le2013-03-14", {1, 2, 3, 4, 5, 7, 12}),
    ("sa2013-03-14", {6, 8, 9, 10, 11}),         # 15-Mar onwards yes, 21-Jan onwards no
    ("eb2013-03-14", {1, 2, 3, 4, 7}),           # "before and including 21-Jan" yes
    ("2020", {8, 9, 10, 11}),                    # 2020 contains 2020-05-01
    ("eq2020-05", {8, 10}),                      # a Period reaching into April does not
    ("ap2020-05", {5, 6, 8, 9, 10, 11, 12}),
    ("eq2020-06-01", {11}),                      # time zones: compared in UTC
    ("eq2020-05-31", set()),
    ("lt2020-05-02", {1, 2, 3, 4, 5, 6, 7, 8, 9, 12}),
    ("sa2020-05-01", {10, 11}),
    ("le1900", {7, 12}),                         # an open start reaches back forever
    ("ge2100", {5, 6}),                          # an open end forward
    ("ap2017-01-01", {5, 6, 12}),                # +-10 % of 8.4 years: only open periods
])
def test_specification_examples(examples: psycopg.Connection[Any], value: str,
                                rids: set[int]) -> None:
    found = {rid - 1000 for rid in matching(examples, DATE, [value]) if rid > 1000}
    assert found == rids


def test_malformed_is_rejected(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(BadRequest):
        matching(db, DATE, ["2020-13-45"])


def test_sort_key(examples: psycopg.Connection[Any]) -> None:
    def order(descending: bool) -> list[int]:
        alias = sql.Identifier("a")
        query = sql.SQL("SELECT a.rid FROM idx_date a WHERE a.rid BETWEEN 1001 AND 1012 "
                        "GROUP BY a.rid ORDER BY {} {}, a.rid").format(
            DATE_SQL.sort_key(alias, descending), sql.SQL("DESC" if descending else "ASC"))
        return [row[0] - 1000 for row in examples.execute(query)]
    assert order(False)[:4] == [7, 12, 1, 4]     # open starts first, then 2013-01-14
    assert order(True)[:2] == [5, 6]             # open ends first


def test_days_in_month_sanity() -> None:
    # The model's month arithmetic agrees with the calendar.
    _, span = render(datetime(2020, 2, 10), "month", 0)
    assert span.last is not None and span.last.day == calendar.monthrange(2020, 2)[1]
