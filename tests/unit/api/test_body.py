"""Body reading limits and JSON parsing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fhir_server.api.body import parse_json, read_limited
from fhir_server.errors import BadRequest, PayloadTooLarge


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
