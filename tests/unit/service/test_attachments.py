"""Finding the Attachments of a resource by the element types of the definitions."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.definitions import Definitions
from fhir_server.service.attachments import attachments


@pytest.fixture(scope="module")
def definitions() -> Definitions:
    return Definitions.load()


def found(definitions: Definitions, resource: dict[str, Any]) -> list[str]:
    return sorted(a["title"] for a in attachments(definitions, resource))


def test_attachments_everywhere(definitions: Definitions) -> None:
    report = {
        "resourceType": "DiagnosticReport", "status": "final", "code": {"text": "x"},
        "presentedForm": [{"title": "form", "data": "AAAA"}],
        "extension": [{"url": "http://example.org/x", "valueAttachment": {"title": "ext"}}],
        "contained": [{"resourceType": "DocumentReference", "status": "current",
                       "content": [{"attachment": {"title": "contained"}}]}],
        # not Attachments: SampledData.data and Signature.data are other types
        "result": [{"reference": "Observation/1"}],
    }
    assert found(definitions, report) == ["contained", "ext", "form"]


def test_not_attachments(definitions: Definitions) -> None:
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "valueSampledData": {"origin": {"value": 0}, "period": 1,
                                        "dimensions": 1, "data": "1 2 3"}}
    provenance = {"resourceType": "Provenance", "target": [{"reference": "Patient/1"}],
                  "signature": [{"type": [], "when": "2020-01-01T00:00:00Z",
                                 "who": {"reference": "Patient/1"}, "data": "AAAA"}]}
    assert found(definitions, observation) == []
    assert found(definitions, provenance) == []


def test_media_and_document_reference(definitions: Definitions) -> None:
    media = {"resourceType": "Media", "status": "completed", "content": {"title": "scan"}}
    document = {"resourceType": "DocumentReference", "status": "current",
                "content": [{"attachment": {"title": "a"}}, {"attachment": {"title": "b"}}]}
    assert found(definitions, media) == ["scan"]
    assert found(definitions, document) == ["a", "b"]
