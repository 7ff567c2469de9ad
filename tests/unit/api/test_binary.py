"""Binary's wire rules without a server: byte ranges and the choice of representation."""

from __future__ import annotations

import pytest

from fhir_server.api.binary import _range, _wants_raw
from fhir_server.api.messages import FhirRequest
from fhir_server.errors import NotAcceptable, RangeNotSatisfiable


def request(raw: bool = True, query: str = "", **headers: str) -> FhirRequest:
    return FhirRequest("GET", "Binary/1", query,
                       {k.replace("_", "-"): v for k, v in headers.items()}, raw=raw)


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-99", (0, 100)),
    ("bytes=10-", (10, 990)),
    ("bytes=-10", (990, 10)),
    ("bytes=-5000", (0, 1000)),  # a suffix longer than the content: all of it
    ("bytes=900-5000", (900, 100)),  # a last position past the end is cut
    ("bytes=0-1,5-6", (0, 1000)),  # several ranges: ignored (allowed)
    ("items=0-1", (0, 1000)),  # another unit: ignored
    ("bytes=5-1", (0, 1000)),  # invalid: ignored
    ("bytes=a-b", (0, 1000)),
])
def test_ranges(header: str, expected: tuple[int, int]) -> None:
    assert _range(request(range=header), 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=-0", "bytes=2000-3000"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        _range(request(range=header), 1000)
    assert caught.value.status == 416
    assert caught.value.headers == {"Content-Range": "bytes */1000"}


def test_if_range_with_our_weak_tags_sends_everything() -> None:
    assert _range(request(range="bytes=0-9", if_range='W/"1"'), 1000) == (0, 1000)


@pytest.mark.parametrize(("accept", "raw"), [
    (None, True),
    ("application/pdf", True),
    ("application/*", True),
    ("*/*", True),
    ("application/fhir+json", False),
    ("application/json", False),
    ("application/fhir+json;q=0.5, application/pdf", True),
    ("application/pdf;q=0.1, application/fhir+json", False),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
    ("application/fhir+xml", False),
    ("application/xml+fhir;q=0.9, application/pdf;q=0.5", False),
])
def test_representation(accept: str | None, raw: bool) -> None:
    headers = {} if accept is None else {"accept": accept}
    assert _wants_raw(request(**headers), "application/pdf") is raw


def test_format_asks_for_fhir() -> None:
    assert _wants_raw(request(query="_format=json"), "application/pdf") is False
    assert _wants_raw(request(query="_format=xml"), "application/pdf") is False
    with pytest.raises(NotAcceptable):
        _wants_raw(request(query="_format=ttl"), "application/pdf")


def test_neither_the_content_nor_fhir_is_406() -> None:
    with pytest.raises(NotAcceptable):
        _wants_raw(request(accept="image/png"), "application/pdf")


def test_a_bundle_entry_gets_the_resource() -> None:
    assert _wants_raw(request(raw=False, accept="application/pdf"), "application/pdf") is False
