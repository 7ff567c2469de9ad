"""The cache entry codec (no Redis needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from fhir_server.cache.entries import decode, encode
from fhir_server.service.repository import StoredVersion


def test_round_trip() -> None:
    moment = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    for version in (
        StoredVersion("Patient", "a", 3, moment, False, '{"a": "x|y|z", "é": 1}'),
        StoredVersion("Patient", "a", 4, moment, True, None, "DELETE"),
        StoredVersion("Patient", "a", 1, datetime.now(UTC), False, "", "PUT"),
    ):
        back = decode("Patient", "a", encode(version))
        assert back == version


def test_foreign_values_are_misses() -> None:
    for raw in (b"", b"2|1|x|0||+|{}", b"1|x|2024-01-01T00:00:00+00:00|0||+|{}",
                b"1|1|not a date|0||+|{}", b"1|1|2024-01-01T00:00:00+00:00|0|GET|+|{}",
                b"1|1|2024"):
        assert decode("Patient", "a", raw) is None
