"""History cursor tokens and page sizes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhir_server.errors import BadRequest
from fhir_server.service.history import decode_cursor, encode_cursor, page_size


def test_cursor_round_trip() -> None:
    cursor = (datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), 42)
    token = encode_cursor(cursor)
    assert "=" not in token and "|" not in token
    assert decode_cursor(token) == cursor


@pytest.mark.parametrize("token", ["", "!!", "bm90IGEgY3Vyc29y", "MjAyNC0wMS0wMnwx"])
def test_forged_cursor(token: str) -> None:
    with pytest.raises(BadRequest):
        decode_cursor(token)


def test_page_size() -> None:
    assert page_size({}, 20, 1000) == 20
    assert page_size({"_count": "5"}, 20, 1000) == 5
    assert page_size({"_count": "5000"}, 20, 1000) == 1000
    assert page_size({"_count": "0"}, 20, 1000) == 0
    for bad in ("-1", "x", "1.5"):
        with pytest.raises(BadRequest):
            page_size({"_count": bad}, 20, 1000)
