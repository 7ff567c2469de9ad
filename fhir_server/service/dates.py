"""FHIR date, dateTime and instant values as half-open UTC ranges by their precision."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def _add_months(moment: datetime, months: int) -> datetime:
    total = moment.month - 1 + months
    return moment.replace(year=moment.year + total // 12, month=total % 12 + 1)


def parse_range(value: str) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC for a FHIR date/dateTime/instant; ValueError if malformed.

    ``2020`` is all of 2020, ``2020-05-01T10:00`` the whole minute. A value without a
    time zone is taken as UTC.
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
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    fraction = g["f"] or ""
    try:
        start = datetime(
            int(g["y"]), int(g["m"] or 1), int(g["d"] or 1), int(g["H"] or 0), int(g["M"] or 0),
            int(g["S"] or 0), int((fraction + "000000")[:6]), tzinfo=tz,
        )
    except ValueError:
        raise ValueError(f"{value!r} is not a valid calendar date or time") from None
    if g["m"] is None:
        end = start.replace(year=start.year + 1)
    elif g["d"] is None:
        end = _add_months(start, 1)
    elif g["H"] is None:
        end = start + timedelta(days=1)
    elif g["S"] is None:
        end = start + timedelta(minutes=1)
    elif not fraction:
        end = start + timedelta(seconds=1)
    else:
        end = start + timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
    return start.astimezone(UTC), end.astimezone(UTC)
