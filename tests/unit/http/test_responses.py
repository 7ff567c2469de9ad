"""Bundle link query strings; Bundles on the wire, whole or in pieces."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
import pytest
from starlette.responses import StreamingResponse

from fhir_server.api.common import query_string
from fhir_server.api.messages import FhirResponse
from fhir_server.http.responses import (
    _DEFAULT,
    CHUNK_BYTES,
    bundle_chunks,
    http_response,
    render,
)


def test_query_strings_keep_fhir_punctuation_readable() -> None:
    pairs = [("family:exact", "Ängström"), ("code", "http://loinc.org|8867-4,1234-5"),
             ("code-value-quantity", "http://loinc.org|8867-4$gt70"), ("given", "a b&c=d")]
    text = query_string(pairs)
    assert text == ("family:exact=%C3%84ngstr%C3%B6m&code=http://loinc.org%7C8867-4,1234-5"
                    "&code-value-quantity=http://loinc.org%7C8867-4$gt70&given=a+b%26c%3Dd")
    assert parse_qsl(text) == pairs


def _bundle(entries: int, size: int) -> dict[str, Any]:
    resource = orjson.dumps({"resourceType": "Basic", "note": "n" * size, "x": [1, {"y": 2}]})
    return {"resourceType": "Bundle", "type": "searchset", "total": entries,
            "link": [{"relation": "self", "url": "http://h/fhir/Basic"}],
            "entry": [{"fullUrl": f"http://h/fhir/Basic/{n}",
                       "resource": orjson.Fragment(resource),
                       "search": {"mode": "match"}} for n in range(entries)]}


@pytest.mark.parametrize("pretty", [False, True])
def test_a_bundle_in_pieces_is_the_bundle_byte_for_byte(pretty: bool) -> None:
    bundle = _bundle(40, 5000)
    pieces = list(bundle_chunks(bundle, pretty))
    assert b"".join(pieces) == render(bundle, pretty)
    assert len(pieces) > 2
    # no piece but the last grows much past CHUNK_BYTES: an entry at a time
    assert all(len(p) < CHUNK_BYTES + 3 * 5100 for p in pieces)


@pytest.mark.parametrize("pretty", [False, True])
def test_one_entry_bundle_in_pieces_is_the_same(pretty: bool) -> None:
    bundle = _bundle(1, 10)
    assert b"".join(bundle_chunks(bundle, pretty)) == render(bundle, pretty)


def test_a_large_bundle_is_streamed_and_a_small_one_sent_whole() -> None:
    large = http_response(FhirResponse(200, _bundle(40, 5000)), _DEFAULT, "")
    assert isinstance(large, StreamingResponse)
    assert "content-length" not in large.headers
    assert large.media_type == "application/fhir+json; charset=utf-8"
    small = http_response(FhirResponse(200, _bundle(2, 10)), _DEFAULT, "")
    assert not isinstance(small, StreamingResponse)
    assert small.body == render(_bundle(2, 10), False)
    assert small.headers["content-length"] == str(len(small.body))


def test_bundles_not_ending_in_entries_are_sent_whole() -> None:
    bundle = _bundle(40, 5000)
    bundle["signature"] = {"type": []}  # entry is no longer the last member
    answer = http_response(FhirResponse(200, bundle), _DEFAULT, "")
    assert not isinstance(answer, StreamingResponse)
    assert answer.body == render(bundle, False)
