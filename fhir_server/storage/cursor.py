"""Paging cursors: the opaque ``_cursor`` tokens of search and history links.

A token holds a keyset position (the sort values of a page's first or last row, then
its row id) and a direction. Tokens come back from clients, so every value is checked
against the type its sort key has in SQL before it reaches a statement: a forged token
is a 400 naming ``_cursor``, never a database error.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from fhir_server.errors import BadRequest

_INT64 = 1 << 63
# ASCII only, and nothing Python reads that PostgreSQL does not: Decimal() and
# datetime take non-ASCII digits (Arabic-Indic, fullwidth), and Decimal() '1_0', ' 1',
# 'inf' and 'sNaN'.
_TIMESTAMP = re.compile(
    r"-?infinity|\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}(?::?\d{2})?)",
    re.ASCII)
#: what numeric's text output looks like, within bounds PostgreSQL's numeric reads
#: (below 1e2000, at most 2999 digits after the point)
_NUMERIC = re.compile(r"-?(?:Infinity|\d{1,1000}(?:\.\d{1,2000})?(?:[eE][+-]?\d{1,3})?)",
                      re.ASCII)


def encode(values: Sequence[Any], backwards: bool = False) -> str:
    """An opaque, URL-safe token for a position (values: str, int, None or datetime)."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = orjson.dumps({"k": plain, "b": backwards})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, sql_types: Sequence[str]) -> tuple[list[Any], bool]:
    """The position in a token: one value per ``sql_types`` entry (``text``,
    ``numeric``, ``timestamptz``; any may be NULL) then a row id; BadRequest if forged."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        keys, backwards = data["k"], data["b"]
        if not isinstance(keys, list) or not isinstance(backwards, bool):
            raise ValueError("bad cursor")
        if len(keys) != len(sql_types) + 1 or not _row_id(keys[-1]):
            raise ValueError("bad cursor")
        if not all(v is None or _valid(v, t) for v, t in zip(keys, sql_types, strict=False)):
            raise ValueError("bad cursor")
        return keys, backwards
    except (ValueError, KeyError, TypeError, binascii.Error):
        # orjson.JSONDecodeError is a ValueError too
        raise BadRequest(f"_cursor {token[:100]!r} is not a valid paging cursor for this "
                         "request") from None


def _row_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _INT64


def _valid(value: Any, sql_type: str) -> bool:
    if not isinstance(value, str) or "\x00" in value or len(value) > 4096:
        return False
    if sql_type == "numeric":
        return _NUMERIC.fullmatch(value) is not None
    if sql_type == "timestamptz":
        if not _TIMESTAMP.fullmatch(value):
            return False
        if value.endswith("infinity"):
            return True
        try:
            datetime.fromisoformat(_iso(value))
        except ValueError:
            return False
        return True
    return sql_type == "text"


def _iso(value: str) -> str:
    """PostgreSQL's ``2020-01-02 03:04:05+00`` as ``datetime.fromisoformat`` reads it."""
    text = value.replace(" ", "T").replace("Z", "+00:00")
    sign = max(text.rfind("+"), text.rfind("-", 19))
    if sign > 0 and len(text) - sign == 3:  # +HH -> +HH:00
        text += ":00"
    elif sign > 0 and ":" not in text[sign:]:  # +HHMM -> +HH:MM
        text = f"{text[:sign + 3]}:{text[sign + 3:]}"
    return text
