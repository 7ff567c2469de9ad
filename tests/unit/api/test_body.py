"""Body reading limits and JSON parsing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest

from fhir_server.api.body import check_number, parse_json, parse_json_exact, read_limited
from fhir_server.errors import BadRequest, PayloadTooLarge
from fhir_server.service.write import dumps


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_read_limited_collects() -> None:
    assert asyncio.run(read_limited(_chunks(b"ab", b"cd"), None, 4)) == b"abcd"


def test_read_limited_refuses_declared_and_streamed_excess() -> None:
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_limited(_chunks(b"a"), "5", 4))
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_limited(_chunks(b"abc", b"de"), None, 4))
    with pytest.raises(BadRequest):
        asyncio.run(read_limited(_chunks(b"a"), "five", 4))


def test_parse_json() -> None:
    assert parse_json(b'\xef\xbb\xbf{"a": [1]}', 5) == {"a": [1]}


@pytest.mark.parametrize(("raw", "fragment"), [
    (b"", "empty"), (b"  ", "empty"), (b"{", "not valid JSON"), (b'"\xff"', "UTF-8"),
    (b"[" * 2000 + b"]" * 2000, "deeper"), (b'{"a":{"b":{"c":{}}}}', "deeper"),
    (b'{"a":"x\\u0000"}', "NUL"), (b'{"a\\u0000":1}', "NUL"), (b'["\\u0000"]', "NUL"),
])
def test_parse_json_refusals(raw: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_json(raw, 3)
    assert fragment in caught.value.diagnostics


@pytest.mark.parametrize("parse", [parse_json, parse_json_exact])
@pytest.mark.parametrize(("raw", "fragment"), [
    (b'{"a":"\\ud800"}', "surrogate"), (b'{"a":["x\\udc00"]}', "surrogate"),
    (b'{"\\udfff":1}', "surrogate"), (b'{"a":"\\ude00\\ud83d"}', "surrogate"),
    (b'{"a":1e999999}', "number"), (b'{"a":1e-999999}', "number"),
    (b'{"a":[1e-400]}', "number"), (b'{"a":4.9e-324}', "number"), (b'{"a":1e308}', "number"),
    (b'{"a":0e-5000}', "number"), (b'{"a":' + b"9" * 400 + b"}", "number"),
    (b'{"a":0.' + b"0" * 400 + b"1}", "number"), (b'{"a":1.' + b"1" * 1000 + b"}", "number"),
    (b'{"a":NaN}', "JSON"), (b'{"a":-Infinity}', "JSON"),
])
def test_refusals_of_both_parsers(parse: Callable[[bytes, int], Any], raw: bytes,
                                  fragment: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(raw, 5)
    assert fragment in caught.value.diagnostics


@pytest.mark.parametrize("raw", [
    b'{"a":"\\ud83d\\ude00"}', b'{"a":"\\\\ud800"}', b'{"a":1e307}', b'{"a":-1e-307}',
    b'{"a":0e5}', b'{"a":1.' + b"1" * 998 + b"}", b'{"a":"1e999999"}',
    b'{"a":"' + b"7" * 500 + b'"}',
])
def test_what_both_parsers_take(raw: bytes) -> None:
    assert parse_json(raw, 5) == orjson.loads(raw)
    parse_json_exact(raw, 5)


def test_exact_parser_keeps_every_digit() -> None:
    value = parse_json_exact(b'{"d":0.10,"i":12,"big":123456789012345678901234567890,'
                             b'"edge":9223372036854775807,"past":9223372036854775808}', 5)
    assert value == {"d": Decimal("0.10"), "i": 12,
                     "big": Decimal(123456789012345678901234567890),
                     "edge": 9223372036854775807, "past": Decimal(9223372036854775808)}
    assert isinstance(value["edge"], int) and isinstance(value["past"], Decimal)
    assert dumps(value) == ('{"d":0.10,"i":12,"big":123456789012345678901234567890,'
                            '"edge":9223372036854775807,"past":9223372036854775808}')


@pytest.mark.parametrize(("text", "ok"), [
    ("1e307", True), ("9.99e307", True), ("1e308", False), ("1e-307", True),
    ("9e-308", False), ("0", True), ("0e-1307", True), ("0e-1308", False), ("0e307", True),
    ("0e308", False), ("1" * 309, False), ("1" * 308, True),
    ("1." + "0" * 999, True), ("1." + "0" * 1000, False),
])
def test_check_number_bounds(text: str, ok: bool) -> None:
    if ok:
        check_number(Decimal(text))
    else:
        with pytest.raises(BadRequest, match="cannot be stored"):
            check_number(Decimal(text))
