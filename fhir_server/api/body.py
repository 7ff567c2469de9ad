"""Reading request bodies safely: size limit, UTF-8, JSON (or FHIR XML) syntax, nesting
depth, and only what PostgreSQL's jsonb and numeric can store (no NUL, no lone
surrogate, numbers within the range below)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson

from fhir_server.api.negotiation import body_format
from fhir_server.errors import BadRequest, PayloadTooLarge
from fhir_server.formats.xml_read import read_xml

_BOM = b"\xef\xbb\xbf"
#: The numbers stored: the indexer and FHIRPath read them as floats, so a non-zero value
#: needs a decimal exponent within a float's normal range (nothing becomes 0 or
#: infinity), and digits well inside what PostgreSQL's numeric keeps.
MOST_EXPONENT = 307
MOST_DIGITS = 1000
_LEAST_EXPONENT = -(MOST_EXPONENT + MOST_DIGITS)
#: A number token that may break those rules (an exponent of three digits or a run of
#: 200 digits; shorter ones cannot): only then is the body read again exactly to judge.
_EXTREME_NUMBER = re.compile(
    rb"[:,\[]\s*-?(?:[0-9]{200}|[0-9]+\.[0-9]{200}|[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]{3})")
#: a JSON escape of a UTF-16 surrogate: only then can a decoded string hold a lone one
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64 = 1 << 63


async def read_limited(stream: AsyncIterator[bytes], content_length: str | None,
                       max_bytes: int) -> bytes:
    """Collect a body, refusing it (413) as soon as it exceeds ``max_bytes``."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if declared > max_bytes:
            raise PayloadTooLarge(f"the body ({declared} bytes) exceeds the limit of "
                                  f"{max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes, max_depth: int) -> Any:
    """Parse a JSON body; BadRequest for empty, non-UTF-8, malformed or too deep input.

    orjson rejects invalid UTF-8, lone surrogates and infinite numbers and caps nesting
    at 1024 itself; the walk below applies our tighter depth limit and refuses NUL
    characters, which PostgreSQL's jsonb cannot store (they would otherwise surface as
    database errors). orjson reads ``1e-400`` as 0.0, so a body with an extreme number
    is read again exactly for :func:`check_tree` to judge its numbers.
    """
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    if not raw.strip():
        raise BadRequest("the request body is empty")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "utf-8" in message.lower():
            raise BadRequest("the request body is not valid UTF-8") from None
        if "surrogate" in message.lower():
            raise BadRequest(f"the request body holds a lone UTF-16 surrogate (not valid "
                             f"Unicode): {message}") from None
        if "recursion" in message.lower() or "depth limit" in message.lower():
            raise BadRequest(f"the JSON nesting is deeper than {max_depth} levels",
                             code="structure") from None
        raise BadRequest(f"the request body is not valid JSON: {message}") from None
    check_tree(value, max_depth)
    if _EXTREME_NUMBER.search(raw):
        parse_json_exact(raw, max_depth)
    return value


def parse_body(raw: bytes, content_type: str | None, max_depth: int,
               exact: bool = False) -> Any:
    """A body declared as FHIR JSON or FHIR XML (415 otherwise), as JSON values; with
    ``exact`` (or from XML) decimals are ``Decimal``s keeping every digit."""
    if body_format(content_type) == "xml":
        return parse_xml(raw, max_depth)
    return parse_json_exact(raw, max_depth) if exact else parse_json(raw, max_depth)


def parse_xml(raw: bytes, max_depth: int) -> Any:
    """A FHIR XML body as the JSON a client would have sent, held to the JSON rules too
    (depth of the JSON form, numbers PostgreSQL can store)."""
    value = read_xml(raw, max_depth)
    check_tree(value, max_depth)
    return value


def check_tree(root: Any, max_depth: int, surrogates: bool = False) -> None:
    """BadRequest when ``root`` nests deeper than ``max_depth``, holds NUL characters (or
    with ``surrogates``, lone UTF-16 surrogates) or a Decimal outside :func:`check_number`.
    """
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise BadRequest(f"the JSON nesting is deeper than {max_depth} levels",
                             code="structure")
        if isinstance(node, dict):
            for key, child in node.items():
                _check_string(key, "a JSON key", surrogates)
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
                elif isinstance(child, str):
                    _check_string(child, f"the value of {key!r}", surrogates)
                elif isinstance(child, Decimal):
                    check_number(child)
        elif isinstance(node, list):
            for child in node:
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
                elif isinstance(child, str):
                    _check_string(child, "a JSON string", surrogates)
                elif isinstance(child, Decimal):
                    check_number(child)


def _check_string(value: str, what: str, surrogates: bool) -> None:
    if "\x00" in value:
        raise BadRequest(f"{what} contains a NUL character")
    if surrogates and _SURROGATE.search(value):
        raise BadRequest(f"{what} contains a lone UTF-16 surrogate (not valid Unicode)")


def check_number(value: Decimal) -> None:
    """BadRequest unless ``value`` is finite, has at most MOST_DIGITS digits and, when
    not zero, a decimal exponent within +-MOST_EXPONENT."""
    if not value.is_finite():
        raise BadRequest(f"the number {value} is not finite")
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if len(digits) > MOST_DIGITS or not _LEAST_EXPONENT <= exponent <= MOST_EXPONENT or (
            value and not -MOST_EXPONENT <= value.adjusted() <= MOST_EXPONENT):
        shown = str(value)
        shown = shown if len(shown) <= 40 else f"{shown[:20]}...{shown[-12:]}"
        raise BadRequest(f"the number {shown} cannot be stored: numbers need at most "
                         f"{MOST_DIGITS} digits and, unless zero, a magnitude from "
                         f"1e-{MOST_EXPONENT} to below 1e{MOST_EXPONENT + 1}")


def parse_json_exact(raw: bytes, max_depth: int) -> Any:
    """Like :func:`parse_json`, but decimals become ``Decimal`` so no digit is lost.

    For bodies whose resources are changed and re-serialized (Bundles): slower than
    orjson, exact where it matters. Integers beyond 64 bits become Decimals too (orjson
    writes no larger int); ``NaN`` and ``Infinity``, which Python's json reads, are
    refused as orjson refuses them.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid UTF-8") from None
    if not text.strip():
        raise BadRequest("the request body is empty")
    try:
        value = json.loads(text, parse_float=Decimal, parse_int=_integer,
                           parse_constant=_constant)
    except RecursionError:
        raise BadRequest(f"the JSON nesting is deeper than {max_depth} levels",
                             code="structure") from None
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    check_tree(value, max_depth, _SURROGATE_ESCAPE.search(text) is not None)
    return value


def _integer(text: str) -> int | Decimal:
    if len(text) < 19:  # always within 64 bits
        return int(text)
    value = Decimal(text)
    return int(value) if -_INT64 <= value < _INT64 else value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
