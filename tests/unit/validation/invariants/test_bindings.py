"""Extensible and preferred bindings of the base definitions: warnings, never errors."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.validation.invariants import Invariants

V3_MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SNOMED = "http://snomed.info/sct"


def _warnings(invariants: Invariants, resource: dict[str, Any]) -> list[tuple[str, str]]:
    found = invariants.issues(resource)
    assert all(i.severity == "warning" for i in found), found
    return [(i.code, i.expression[0]) for i in found]


@pytest.mark.parametrize(("resource", "where"), [
    ({"resourceType": "Patient", "maritalStatus": {"coding": [
        {"system": "http://example.org/marital", "code": "civil-union"}]}},
     "Patient.maritalStatus"),  # extensible, CodeableConcept (a v3 code system)
    ({"resourceType": "Encounter", "status": "finished",
      "class": {"system": "http://example.org/class", "code": "tele"}},
     "Encounter.class"),  # extensible, Coding (v3-ActEncounterCode: an is-a filter)
    ({"resourceType": "Condition", "subject": {"reference": "Patient/1"},
      "severity": {"coding": [{"system": "http://example.org/sev", "code": "meh"}]}},
     "Condition.severity"),  # preferred
    ({"resourceType": "Patient", "contained": [
        {"resourceType": "Practitioner", "id": "p1", "communication": [
            {"coding": [{"system": "http://example.org/lang", "code": "tlh"}]}]}],
      "generalPractitioner": [{"reference": "#p1"}]},
     "Patient.contained[0].communication[0]"),  # in a contained resource
])
def test_a_code_outside_the_value_set_is_a_warning(invariants: Invariants,
                                                  resource: dict[str, Any],
                                                  where: str) -> None:
    assert _warnings(invariants, resource) == [("code-invalid", where)]


@pytest.mark.parametrize("resource", [
    {"resourceType": "Patient", "maritalStatus": {"coding": [
        {"system": "http://example.org/marital", "code": "x"},
        {"system": V3_MARITAL, "code": "M"}]}},  # one member is enough
    {"resourceType": "Patient", "maritalStatus": {"text": "living apart together"}},
    {"resourceType": "Encounter", "status": "finished",
     "class": {"system": ACT_CODE, "code": "IMP"}},
    # SNOMED CT: the value set cannot be expanded here, so it is not checked
    {"resourceType": "Condition", "subject": {"reference": "Patient/1"},
     "code": {"coding": [{"system": SNOMED, "code": "0"}]}},
])
def test_members_text_and_unexpandable_value_sets_give_nothing(
        invariants: Invariants, resource: dict[str, Any]) -> None:
    assert _warnings(invariants, resource) == []
