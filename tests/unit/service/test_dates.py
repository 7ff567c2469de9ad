"""FHIR date ranges by precision."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhir_server.service.dates import parse_range


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("value", "start", "end"), [
    ("2020", d(2020, 1, 1), d(2021, 1, 1)),
    ("2020-12", d(2020, 12, 1), d(2021, 1, 1)),
    ("2020-02-29", d(2020, 2, 29), d(2020, 3, 1)),
    ("2020-05-01T10:00Z", d(2020, 5, 1, 10, 0), d(2020, 5, 1, 10, 1)),
    ("2020-05-01T10:00:01+02:00", d(2020, 5, 1, 8, 0, 1), d(2020, 5, 1, 8, 0, 2)),
    ("2020-05-01T10:00:01 02:00", d(2020, 5, 1, 8, 0, 1), d(2020, 5, 1, 8, 0, 2)),
    ("2020-05-01T10:00:01.5Z", d(2020, 5, 1, 10, 0, 1, 500000), d(2020, 5, 1, 10, 0, 1, 600000)),
])
def test_ranges(value: str, start: datetime, end: datetime) -> None:
    assert parse_range(value) == (start, end)


@pytest.mark.parametrize("value", ["", "20", "2020-13", "2020-13-45", "2021-02-29", "soon",
                                   "2020-05-01T25:00Z"])
def test_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        parse_range(value)
