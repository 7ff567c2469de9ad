"""Paging cursors: round trips, and forged tokens refused before they reach SQL."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest

from fhir_server.errors import BadRequest
from fhir_server.search.parse import parse_count
from fhir_server.storage.cursor import decode, encode


def forge(payload: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def test_round_trip_of_each_sql_type() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    token = encode([when, "12.5", "abc", None, 42], backwards=True)
    assert "=" not in token and "/" not in token and "+" not in token
    keys, backwards = decode(token, ["timestamptz", "numeric", "text", "text"])
    assert keys == [when.isoformat(), "12.5", "abc", None, 42] and backwards is True


@pytest.mark.parametrize("token", [
    "", "!!", "bm90IGEgY3Vyc29y",
    forge({"k": [1], "b": "yes"}),              # direction not a boolean
    forge({"k": ["x"], "b": False}),            # row id not an integer
    forge({"k": [-1], "b": False}),             # negative row id
    forge({"k": [True], "b": False}),           # a boolean is no row id
    forge({"k": [1 << 63], "b": False}),        # past bigint
    forge({"k": ["a", "b", 1], "b": False}),    # too many values
    forge({"k": ["nope", 1], "b": False}),      # not a timestamp
    forge({"k": ["2024-13-40 00:00:00+00", 1], "b": False}),
    forge({"k": ["a\x00b", 1], "b": False}),    # NUL never reaches PostgreSQL
])
def test_forged_cursor_is_a_400(token: str) -> None:
    with pytest.raises(BadRequest, match="_cursor"):
        decode(token, ["timestamptz"])


@pytest.mark.parametrize(("value", "sql_type"), [
    ("NaN", "numeric"), ("1e99999", "numeric"), ("x", "numeric"), ("2024-01-01", "timestamptz"),
    # Python's Decimal and datetime read these; PostgreSQL does not
    ("1_0", "numeric"), ("\uff11\uff12", "numeric"), ("\u0661", "numeric"), (" 1", "numeric"),
    ("1 ", "numeric"), ("sNaN", "numeric"), ("inf", "numeric"), ("+1", "numeric"),
    ("--1", "numeric"), ("1e", "numeric"), (".5", "numeric"), ("1" * 1001, "numeric"),
    ("\u0662\u0660\u0662\u0664-01-02 03:04:05+00", "timestamptz"),
    ("2024-01-02 03:04:05+\uff10\uff10", "timestamptz"),
])
def test_values_that_would_fail_in_sql_are_refused(value: str, sql_type: str) -> None:
    with pytest.raises(BadRequest):
        decode(forge({"k": [value, 1], "b": False}), [sql_type])


@pytest.mark.parametrize("value", ["0", "-12.50", "1e10", "3E-7", "Infinity", "-Infinity",
                                   "1" * 1000 + "." + "5" * 2000])
def test_numerics_postgresql_writes_are_taken(value: str) -> None:
    assert decode(forge({"k": [value, 7], "b": False}), ["numeric"])[0] == [value, 7]


@pytest.mark.parametrize("value", ["infinity", "-infinity", "2024-01-02 03:04:05+00",
                                   "2024-01-02T03:04:05.5+0130", "2024-01-02T03:04:05Z"])
def test_timestamps_postgresql_writes_are_taken(value: str) -> None:
    assert decode(forge({"k": [value, 7], "b": False}), ["timestamptz"])[0] == [value, 7]


def test_count() -> None:
    assert parse_count("5") == 5 and parse_count("0") == 0
    with pytest.raises(BadRequest, match="negative"):
        parse_count("-1")
    for bad in ("x", "1.5", " 5", "+5", "5_000", "٣", "9" * 30, ""):
        with pytest.raises(BadRequest, match="whole number"):
            parse_count(bad)
