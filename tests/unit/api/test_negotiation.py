"""Content negotiation rules."""

from __future__ import annotations

import pytest

from fhir_server.api.negotiation import check_body_media_type, response_media_type
from fhir_server.errors import NotAcceptable, UnsupportedMediaType


@pytest.mark.parametrize(("accept", "fmt", "expected"), [
    (None, None, "application/fhir+json"),
    ("application/json", None, "application/json"),
    ("application/xml;q=0.9, application/json;q=0.5", None, "application/json"),
    ("application/fhir+xml;q=0.1, */*;q=0.9", None, "application/fhir+json"),
    ("application/fhir+xml", "json", "application/fhir+json"),
    (None, "application/fhir+json", "application/fhir+json"),
    (None, "text/html", "application/fhir+json"),
])
def test_response_media_type(accept: str | None, fmt: str | None, expected: str) -> None:
    assert response_media_type(accept, fmt) == expected


@pytest.mark.parametrize(("accept", "fmt"), [
    ("application/fhir+xml", None), ("text/plain", None), (None, "xml"), (None, "ttl"),
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
    check_body_media_type(value)


@pytest.mark.parametrize("value", [None, "", "text/plain", "application/fhir+xml",
                                   "application/json; charset=iso-8859-1",
                                   "application/fhir+json; fhirVersion=3.0"])
def test_refused_bodies(value: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        check_body_media_type(value)
