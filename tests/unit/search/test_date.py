"""Date index rows and date search values parsed, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.date import (
    DATE,
    PREFIXES,
    DateValue,
    bound_text,
    date_range,
    parse_date_value,
    parse_prefix,
)

CTX = IndexContext()
PARSE = ParseContext(now=datetime(2025, 1, 1, tzinfo=UTC))


def d(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
      micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


@pytest.mark.parametrize(("value", "expected"), [
    ("gt2020", ("gt", "2020")),
    ("2020", ("eq", "2020")),
    ("ap5.4", ("ap", "5.4")),
    ("eb", ("eb", "")),
    ("e5", ("eq", "e5")),
    ("GT2020", ("eq", "GT2020")),
])
def test_parse_prefix(value: str, expected: tuple[str, str]) -> None:
    assert parse_prefix(value) == expected


def test_all_nine_prefixes() -> None:
    assert {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"} == PREFIXES


@pytest.mark.parametrize(("value", "low", "high"), [
    ("2020", d(2020, 1, 1), d(2021, 1, 1)),
    ("2020-02", d(2020, 2, 1), d(2020, 3, 1)),
    ("2020-12", d(2020, 12, 1), d(2021, 1, 1)),
    ("2020-02-29", d(2020, 2, 29), d(2020, 3, 1)),
    ("2020-05-01T10:00", d(2020, 5, 1, 10), d(2020, 5, 1, 10, 1)),
    ("2020-05-01T10:00:01+02:00", d(2020, 5, 1, 8, 0, 1), d(2020, 5, 1, 8, 0, 2)),
    ("2020-05-01T10:00:01 02:00", d(2020, 5, 1, 8, 0, 1), d(2020, 5, 1, 8, 0, 2)),
    ("2020-05-01T23:30:00-05:00", d(2020, 5, 2, 4, 30), d(2020, 5, 2, 4, 30, 1)),
    ("2020-05-01T10:00:01.25Z", d(2020, 5, 1, 10, 0, 1, 250000),
     d(2020, 5, 1, 10, 0, 1, 260000)),
    ("2020-05-01T10:00:01.123456789Z", d(2020, 5, 1, 10, 0, 1, 123456),
     d(2020, 5, 1, 10, 0, 1, 123457)),
    ("9999", d(9999, 1, 1), None),
    ("9999-12-31", d(9999, 12, 31), None),
    ("0001-01-01T00:00:00+05:00", None, d(1, 1, 1)),
])
def test_date_range(value: str, low: datetime | None, high: datetime | None) -> None:
    assert date_range(value) == (low, high)


@pytest.mark.parametrize("value", ["", "20", "2020-13", "2020-13-45", "2021-02-29", "soon",
                                   "2020-05-01T25:00Z", "2020-05-01T10", "2020-05-01T10:00+15:00",
                                   "2020/05/01"])
def test_malformed_dates(value: str) -> None:
    with pytest.raises(ValueError):
        date_range(value)


@pytest.mark.parametrize("value", ["2020-13-45", "gt2020-02-30", "ap", "yesterday", "gtgt2020"])
def test_malformed_search_value_is_bad_request(value: str) -> None:
    with pytest.raises(BadRequest, match="date"):
        DATE.parse(1, None, value, PARSE)


@pytest.mark.parametrize("modifier", ["exact", "missingx", "not", "above"])
def test_modifiers_are_rejected(modifier: str) -> None:
    assert frozenset() == DATE.modifiers
    with pytest.raises(BadRequest, match=f":{modifier}"):
        DATE.parse(1, modifier, "2020", PARSE)


def test_rows_of_primitives() -> None:
    rows = DATE.rows(7, [Node("2020", "date"), Node("2020-05-01T10:00:00+02:00", "dateTime"),
                         Node("2020-05-01T08:00:00.000Z", "instant"), Node("2020", "date")], CTX)
    assert rows == [
        (7, iso(d(2020, 1, 1)), iso(d(2021, 1, 1))),
        (7, iso(d(2020, 5, 1, 8)), iso(d(2020, 5, 1, 8, 0, 1))),
        (7, iso(d(2020, 5, 1, 8)), iso(d(2020, 5, 1, 8, 0, 0, 1000))),
    ]


def test_rows_of_periods() -> None:
    nodes = [
        Node({"start": "2020-01-15", "end": "2020-03-31"}, "Period"),
        Node({"start": "2020-01-15T10:00:00Z"}, "Period"),
        Node({"end": "2020-03"}, "Period"),
        Node({}, "Period"),
        Node({"start": "garbage"}, "Period"),
    ]
    assert DATE.rows(1, nodes, CTX) == [
        (1, iso(d(2020, 1, 15)), iso(d(2020, 4, 1))),  # the end's whole day is inside
        (1, iso(d(2020, 1, 15, 10)), "infinity"),
        (1, "-infinity", iso(d(2020, 4, 1))),
    ]


def test_rows_of_timing_span_the_outer_limits() -> None:
    timing = {"event": ["2020-03-01T10:00:00Z", "2020-01-01"],
              "repeat": {"boundsPeriod": {"start": "2020-02-01", "end": "2020-06-30"},
                         "frequency": 2, "period": 1, "periodUnit": "d"}}
    assert DATE.rows(1, [Node(timing, "Timing")], CTX) == [
        (1, iso(d(2020, 1, 1)), iso(d(2020, 7, 1)))]
    open_ended = {"repeat": {"boundsPeriod": {"start": "2020-02-01"}}}
    assert DATE.rows(1, [Node(open_ended, "Timing")], CTX) == [
        (1, iso(d(2020, 2, 1)), "infinity")]
    assert DATE.rows(1, [Node({"repeat": {"count": 3}}, "Timing")], CTX) == []


def test_rows_skip_non_dates() -> None:
    assert DATE.rows(1, [Node(True, "boolean"), Node("not a date", "string"),
                         Node(5, "integer")], CTX) == []


def _parse(value: str) -> DateValue:
    return DATE.parse(3, None, value, PARSE)


@pytest.mark.parametrize("prefix", sorted(PREFIXES - {"ap"}))
def test_search_values_by_prefix(prefix: str) -> None:
    assert _parse(f"{prefix}2020") == DateValue(prefix, d(2020, 1, 1), d(2021, 1, 1))
    assert _parse("2020") == DateValue("eq", d(2020, 1, 1), d(2021, 1, 1))


def test_search_value_in_a_time_zone_is_utc() -> None:
    assert _parse("ge2020-05-01T10:00:01+02:00") == DateValue(
        "ge", d(2020, 5, 1, 8, 0, 1), d(2020, 5, 1, 8, 0, 2))
    assert _parse("9999") == DateValue("eq", d(9999, 1, 1), None)  # open above


def test_ap_widens_by_a_tenth_of_the_distance_to_now() -> None:
    # 2015 is 10 years before PARSE.now (2025-01-01): about one year either side.
    value = _parse("ap2015")
    assert value.prefix == "ap"
    assert value.low == d(2015, 1, 1) - timedelta(days=3653) / 10
    assert value.high == d(2016, 1, 1) + timedelta(days=3288) / 10


def test_ap_around_now_is_not_widened_at_now() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_date_value("ap2025-01-01T00:00:00Z", now) == DateValue(
        "ap", now, now + timedelta(seconds=1) + timedelta(seconds=1) / 10)


def test_ap_without_a_clock_uses_the_current_time() -> None:
    value = DATE.parse(3, None, "ap2000", ParseContext())
    assert value.low is not None and value.low < d(2000, 1, 1) - timedelta(days=365 * 2)


def test_bound_text() -> None:
    assert bound_text(None, high=False) == "-infinity"
    assert bound_text(None, high=True) == "infinity"
    assert bound_text(d(2020, 1, 1), high=True) == "2020-01-01T00:00:00+00:00"


@settings(database=None)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
       st.sampled_from(["year", "month", "day", "minute", "second", "milli"]),
       st.integers(min_value=-14 * 4, max_value=14 * 4))
def test_date_range_contains_the_moment(moment: datetime, precision: str,
                                        quarter_hours: int) -> None:
    offset = timedelta(minutes=15 * quarter_hours)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(quarter_hours) * 15
    tz = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    local = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    text = {
        "year": local.strftime("%Y"), "month": local.strftime("%Y-%m"),
        "day": local.strftime("%Y-%m-%d"),
        "minute": local.strftime("%Y-%m-%dT%H:%M") + tz,
        "second": local.strftime("%Y-%m-%dT%H:%M:%S") + tz,
        "milli": local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + tz,
    }[precision]
    low, high = date_range(text)
    assert low is not None and high is not None
    instant = local.replace(tzinfo=UTC) - (offset if precision in ("minute", "second", "milli")
                                           else timedelta(0))
    assert low <= instant < high
    width = {"minute": timedelta(minutes=1), "second": timedelta(seconds=1),
             "milli": timedelta(milliseconds=1), "day": timedelta(days=1)}
    if precision in width:
        assert high - low == width[precision]
