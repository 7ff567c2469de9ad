"""ETag, HTTP date, instant and Prefer helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from fhir_server.api.headers import (
    etag,
    http_date,
    instant,
    parse_etag,
    parse_http_date,
    prefer_handling,
    prefer_return,
)
from fhir_server.errors import BadRequest


def test_etag_round_trip() -> None:
    assert etag(3) == 'W/"3"'
    assert parse_etag('W/"3"') == 3
    assert parse_etag('"12"') == 12
    assert parse_etag(" W/\"7\" ") == 7


@pytest.mark.parametrize("value", ["", 'W/"x"', "W/", '"-1"', "1" * 12])
def test_bad_etag(value: str) -> None:
    with pytest.raises(BadRequest):
        parse_etag(value)


def test_dates() -> None:
    moment = datetime(2024, 1, 15, 10, 30, 5, 123456, tzinfo=UTC)
    assert http_date(moment) == "Mon, 15 Jan 2024 10:30:05 GMT"
    assert parse_http_date("Mon, 15 Jan 2024 10:30:05 GMT") == moment.replace(microsecond=0)
    assert instant(moment) == "2024-01-15T10:30:05.123456Z"
    plus2 = moment.astimezone(timezone(timedelta(hours=2)))
    assert instant(plus2) == "2024-01-15T10:30:05.123456Z"
    with pytest.raises(BadRequest):
        parse_http_date("yesterday")


@pytest.mark.parametrize(("header", "expected"), [
    (None, "representation"), ("return=minimal", "minimal"),
    ("return=OperationOutcome", "OperationOutcome"), ("respond-async, return=minimal", "minimal"),
    ("return=bogus", "representation"), ('return="minimal"', "minimal"),
])
def test_prefer_return(header: str | None, expected: str) -> None:
    assert prefer_return(header) == expected


def test_prefer_handling() -> None:
    assert prefer_handling("handling=strict") == "strict"
    assert prefer_handling("return=minimal; handling=strict") == "strict"
    assert prefer_handling(None) == "lenient"
