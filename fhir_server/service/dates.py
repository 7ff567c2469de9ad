"""FHIR date, dateTime and instant values as half-open UTC ranges by their precision."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_server.search.date import date_range

_MIN = datetime.min.replace(tzinfo=UTC)
_MAX = datetime.max.replace(tzinfo=UTC)


def parse_range(value: str) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC for a FHIR date/dateTime/instant; ValueError if malformed.

    ``2020`` is all of 2020, ``2020-05-01T10:00`` the whole minute. A value without a
    time zone is taken as UTC. The same parsing as date search (one set of rules for
    ``_since``/``_at`` and ``_lastUpdated``); an open bound becomes datetime's limit.
    """
    low, high = date_range(value)
    return low or _MIN, high or _MAX
