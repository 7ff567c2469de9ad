"""Request ids and client ids for the access log."""

from __future__ import annotations

import base64
import logging
from typing import Any

import orjson
import pytest

from fhir_server.observability.access_log import (
    ClientIds,
    access_level,
    client_id,
    new_request_id,
    sane_request_id,
)


def _bearer(claims: Any, scheme: str = "Bearer") -> bytes:
    payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=")
    return f"{scheme} ".encode() + b"eyJhbGciOiJIUzI1NiJ9." + payload + b".sig"


@pytest.mark.parametrize("value", [b"abc", b"0f8e-1", b"a" * 128, b"ab:cd/ef+g=",
                                   b"3f2a8b1c-0000-4000-8000-000000000000"])
def test_sane_request_ids_are_kept(value: bytes) -> None:
    assert sane_request_id(value) == value.decode()


@pytest.mark.parametrize("value", [b"", b"a" * 129, b"a b", b"a\nb", b"a\"b", b"-a",
                                   b"\xc3\xbc", b"a,b", b"<script>"])
def test_odd_request_ids_are_refused(value: bytes) -> None:
    assert sane_request_id(value) is None


def test_generated_request_ids_are_distinct_hex() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and sane_request_id(i.encode()) == i for i in ids)


@pytest.mark.parametrize(("header", "expected"), [
    (_bearer({"client_id": "app-1", "azp": "x", "sub": "y"}), "app-1"),
    (_bearer({"azp": "portal", "sub": "y"}), "portal"),
    (_bearer({"sub": "user-9"}), "user-9"),
    (_bearer({"client_id": "app-1"}, scheme="bearer"), "app-1"),
    (_bearer({"client_id": 12, "sub": "fallback"}), "fallback"),
    (_bearer({"client_id": "has space\nnewline"}), "-"),
    (_bearer({"client_id": "x" * 500}), "-"),
    (_bearer(["not", "an", "object"]), "-"),
    (_bearer({"iss": "only"}), "-"),
    (_bearer({"client_id": "a"}, scheme="Basic"), "-"),
    (b"Bearer opaque-token-without-dots", "-"),
    (b"Bearer a.b.c.d.e", "-"),
    (b"Bearer a.!!!notbase64!!!.c", "-"),
    (b"Bearer a.bm90IGpzb24.c", "-"),
    (b"", "-"),
    (None, "-"),
])
def test_client_id_from_bearer_claims(header: bytes | None, expected: str) -> None:
    assert client_id(header) == expected
    assert ClientIds()(header) == expected


def test_client_id_memo_is_bounded_and_keeps_no_token() -> None:
    memo = ClientIds(size=4)
    headers = [_bearer({"client_id": f"c{i}"}) for i in range(10)]
    assert [memo(h) for h in headers] == [f"c{i}" for i in range(10)]
    assert len(memo._memo) <= 4
    assert all(isinstance(k, int) for k in memo._memo)


def test_access_levels() -> None:
    assert access_level(200, "/fhir/{resource_type}", failed=False) == logging.INFO
    assert access_level(404, "unmatched", failed=False) == logging.INFO
    assert access_level(503, "/fhir/{resource_type}", failed=False) == logging.ERROR
    assert access_level(200, "/api/v1/health", failed=False) == logging.DEBUG
    assert access_level(503, "/api/v1/ready", failed=False) == logging.ERROR
    assert access_level(200, "/x", failed=True) == logging.ERROR
