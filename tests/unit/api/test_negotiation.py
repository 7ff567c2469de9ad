"""Content negotiation rules."""

from __future__ import annotations

import pytest

from fhir_server.api.negotiation import (
    body_format,
    is_xml,
    response_media_type,
)
from fhir_server.errors import NotAcceptable, UnsupportedMediaType


@pytest.mark.parametrize(("accept", "fmt", "expected"), [
    (None, None, "application/fhir+json"),
    ("application/json", None, "application/json"),
    ("application/xml;q=0.9, application/json;q=0.5", None, "application/xml"),
    ("application/xml;q=0.4, application/json;q=0.5", None, "application/json"),
    ("application/fhir+xml;q=0.1, */*;q=0.9", None, "application/fhir+json"),
    ("application/fhir+xml", "json", "application/fhir+json"),
    (None, "application/fhir+json", "application/fhir+json"),
    (None, "text/html", "application/fhir+json"),
    ("application/fhir+xml", None, "application/fhir+xml"),
    ("application/xml", None, "application/xml"),
    ("text/xml", None, "text/xml"),
    ("application/xml+fhir", None, "application/fhir+xml"),
    ("application/fhir+xml; fhirVersion=4.0", None, "application/fhir+xml"),
    ("application/json;q=0.5, application/fhir+xml", None, "application/fhir+xml"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", None,
     "application/fhir+json"),
    (None, "xml", "application/fhir+xml"),
    (None, "application/fhir+xml", "application/fhir+xml"),
    (None, "application/fhir xml", "application/fhir+xml"),
    (None, "text/xml", "text/xml"),
    (None, "application/xml", "application/xml"),
    ("application/fhir+json", "xml", "application/fhir+xml"),
])
def test_response_media_type(accept: str | None, fmt: str | None, expected: str) -> None:
    assert response_media_type(accept, fmt) == expected


@pytest.mark.parametrize(("accept", "fmt"), [
    ("text/turtle", None), ("text/plain", None), (None, "ttl"), (None, "yaml"),
    ("application/fhir+xml; fhirVersion=3.0", None),
    ("application/json;q=0", None), ("application/fhir+json; fhirVersion=5.0", None),
])
def test_not_acceptable(accept: str | None, fmt: str | None) -> None:
    with pytest.raises(NotAcceptable):
        response_media_type(accept, fmt)


@pytest.mark.parametrize("value", ["application/fhir+json", "application/json",
                                   "application/fhir+json; charset=UTF-8",
                                   "application/json+fhir",
                                   "application/fhir+json;fhirVersion=4.0"])
def test_accepted_bodies(value: str) -> None:
    assert body_format(value) == "json"


@pytest.mark.parametrize("value", ["application/fhir+xml", "application/xml", "text/xml",
                                   "application/fhir+xml; charset=utf-8",
                                   "application/xml+fhir"])
def test_accepted_xml_bodies(value: str) -> None:
    assert body_format(value) == "xml"


def test_xml_answers() -> None:
    assert [is_xml(m) for m in ("application/fhir+xml", "application/xml", "text/xml",
                                "application/fhir+json", "application/json")] == [
        True, True, True, False, False]


@pytest.mark.parametrize("value", [None, "", "text/plain", "application/fhir+turtle",
                                   "application/fhir+xml; charset=utf-16",
                                   "application/json; charset=iso-8859-1",
                                   "application/fhir+json; fhirVersion=3.0"])
def test_refused_bodies(value: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        body_format(value)
