"""Finding the patients an interaction is about."""

from __future__ import annotations

import pytest

from fhir_server.audit import patients


@pytest.mark.parametrize(("reference", "expected"), [
    ("Patient/1", "1"), ("Patient/1/_history/2", "1"),
    ("http://x.example/fhir/Patient/abc", "abc"), ("Group/1", None), ("Patient", None),
])
def test_patient_id(reference: str, expected: str | None) -> None:
    assert patients.patient_id(reference) == expected


def test_of_resource() -> None:
    assert patients.of_resource({"resourceType": "Patient", "id": "p"}) == ["p"]
    assert patients.of_resource({"resourceType": "Observation",
                                 "subject": {"reference": "Patient/s"}}) == ["s"]
    assert patients.of_resource({"resourceType": "Encounter",
                                 "subject": {"reference": "Group/g"}}) == []
    assert patients.of_resource({"resourceType": "Appointment",
                                 "patient": [{"reference": "Patient/a"}]}) == ["a"]


def test_of_text_parses_only_when_it_can_name_a_patient() -> None:
    assert patients.of_text('{"resourceType":"Organization","id":"o"}', "Organization") == []
    assert patients.of_text('{"resourceType":"Observation","subject":'
                            '{"reference":"Patient/9"}}', "Observation") == ["9"]
    assert patients.of_text("not json Patient/", "Observation") == []


def test_of_query() -> None:
    pairs = [("patient", "1,2"), ("subject", "Patient/3"), ("subject", "bare"),
             ("code", "x"), ("subject:Patient", "4")]
    assert patients.of_query("Observation", pairs) == ["1", "2", "3", "4"]
    assert patients.of_query("Patient", [("_id", "a,b")]) == ["a", "b"]
    assert patients.of_query("Observation", [("_id", "a")]) == []


def test_of_path_and_merged() -> None:
    assert patients.of_path({"compartment": "Patient", "id": "c",
                             "resource_type": "Observation"}) == ["c"]
    assert patients.of_path({"resource_type": "Patient", "id": "p"}) == ["p"]
    assert patients.merged(["a"], ["b", "a"], []) == ["a", "b"]
