"""The calendar-exact date regexes agree with the real calendar."""

from __future__ import annotations

import datetime
import re

import pytest

from fhir_server.validation.dates import PATTERNS, calendar_valid

DATE = re.compile(PATTERNS["date"])
DATE_TIME = re.compile(PATTERNS["dateTime"])
INSTANT = re.compile(PATTERNS["instant"])


def _is_day(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("year", [1, 4, 100, 400, 1900, 1996, 1999, 2000, 2023, 2024, 2100,
                                  2400, 9999])
def test_every_day_of_year(year: int) -> None:
    for month in range(1, 13):
        for day in range(1, 32):
            text = f"{year:04d}-{month:02d}-{day:02d}"
            expected = _is_day(year, month, day)
            assert bool(DATE.match(text)) is expected, text
            assert bool(DATE_TIME.match(text + "T10:00:00Z")) is expected, text
            assert bool(INSTANT.match(text + "T10:00:00.123+01:00")) is expected, text
            assert calendar_valid(text) is expected, text


@pytest.mark.parametrize(("pattern", "value", "ok"), [
    ("date", "2021", True), ("date", "2021-02", True), ("date", "0000", False),
    ("date", "2021-13", False), ("date", "2021-02-01T00:00:00Z", False),
    ("dateTime", "2021-02-01T10:00:00", False), ("dateTime", "2021-02-01T24:00:00Z", False),
    ("dateTime", "2021-02-01T23:59:60Z", True), ("dateTime", "2021-02-01T10:00Z", False),
    ("instant", "2021-02-01", False), ("instant", "2021-02-01T10:00:00-15:00", False),
])
def test_shapes(pattern: str, value: str, ok: bool) -> None:
    assert bool(re.match(PATTERNS[pattern], value)) is ok


@pytest.mark.parametrize("value", ["2021", "2021-02", "garbage", "abcd-ef-gh", "2021-13-40"])
def test_calendar_valid_leaves_shape_to_the_regex(value: str) -> None:
    assert calendar_valid(value)
