"""FHIR header conventions: ETag versions, HTTP dates, instants and ``Prefer``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

from fhir_server.errors import BadRequest

_ETAG = re.compile(r'^\s*(?:W/)?"?([0-9]{1,9})"?\s*$')


def etag(version_id: int) -> str:
    """The weak ETag of a version, as FHIR prescribes: ``W/"3"``."""
    return f'W/"{version_id}"'


def parse_etag(value: str, header: str = "If-Match") -> int:
    """The version number in an ETag such as ``W/"3"`` (also ``"3"``), or BadRequest."""
    match = _ETAG.match(value)
    if match is None:
        raise BadRequest(f'{header} must be a version ETag like W/"3", not {value!r}')
    return int(match.group(1))


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@lru_cache(maxsize=4096)
def http_date(moment: datetime) -> str:
    """An RFC 9110 IMF-fixdate, for Last-Modified (on every read, so kept cheap)."""
    m = moment.astimezone(UTC)
    return (f"{_DAYS[m.weekday()]}, {m.day:02d} {_MONTHS[m.month - 1]} {m.year:04d} "
            f"{m.hour:02d}:{m.minute:02d}:{m.second:02d} GMT")


def parse_http_date(value: str, header: str = "If-Modified-Since") -> datetime:
    """Parse an HTTP date; BadRequest when it is not one."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{header} is not an HTTP date: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def instant(moment: datetime) -> str:
    """A FHIR instant with microseconds in UTC, matching the database's fhir_instant()."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prefer_return(prefer: str | None) -> str:
    """The ``return=`` preference: ``minimal``, ``representation`` or ``OperationOutcome``."""
    if prefer:
        for part in prefer.split(","):
            for token in part.split(";"):
                key, _, value = token.strip().partition("=")
                if key.strip().lower() == "return":
                    value = value.strip().strip('"')
                    if value in ("minimal", "representation", "OperationOutcome"):
                        return value
    return "representation"


def prefer_handling(prefer: str | None) -> str:
    """The ``handling=`` preference: ``strict`` or ``lenient`` (the default)."""
    if prefer:
        for part in prefer.replace(";", ",").split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "handling" and value.strip().strip('"') == "strict":
                return "strict"
    return "lenient"
