"""Profiles' own invariants (hosp-appt-1, hosp-doc-1) through ``check_constraints``."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.paths import data_dir
from fhir_server.validation import Validator
from fhir_server.validation.invariants import Invariants
from fhir_server.validation.profiles import ProfileSet

APPOINTMENT = "http://fhir-server.dev/StructureDefinition/hospital-appointment"
DOCUMENT = "http://fhir-server.dev/StructureDefinition/hospital-documentreference"


@pytest.fixture(scope="module")
def profiled(validator: Validator, invariants: Invariants) -> ProfileSet:
    return ProfileSet.load(validator.definitions, data_dir("profiles"),
                           constraints=invariants.check_constraints)


def _invariant_issues(profiles: ProfileSet, resource: dict[str, Any]) -> list[Any]:
    return [i.to_json() for i in profiles.issues(resource) if i.code == "invariant"]


def test_hosp_appt_1(profiled: ProfileSet) -> None:
    booked = {"resourceType": "Appointment", "meta": {"profile": [APPOINTMENT]},
              "status": "booked", "start": "2024-01-01T10:00:00Z",
              "participant": [{"actor": {"reference": "Patient/1"}, "status": "accepted"}]}
    assert _invariant_issues(profiled, booked) == [{
        "severity": "error", "code": "invariant",
        "diagnostics": "hosp-appt-1: A booked (or later) appointment has a start and an end",
        "expression": ["Appointment"]}]
    assert _invariant_issues(profiled, {**booked, "end": "2024-01-01T10:30:00Z"}) == []


def test_hosp_doc_1_on_every_attachment(profiled: ProfileSet) -> None:
    document = {"resourceType": "DocumentReference", "meta": {"profile": [DOCUMENT]},
                "status": "current", "subject": {"reference": "Patient/1"},
                "content": [{"attachment": {"contentType": "text/plain", "url": "http://x"}},
                            {"attachment": {"contentType": "text/plain"}}]}
    assert _invariant_issues(profiled, document) == [{
        "severity": "error", "code": "invariant",
        "diagnostics": "hosp-doc-1: The attachment carries the document (data) or points "
                       "to it (url)",
        "expression": ["DocumentReference.content[1].attachment"]}]


def test_a_constraint_on_a_slice_is_left_to_the_walker(invariants: Invariants) -> None:
    constraint = {"key": "x-1", "severity": "error", "human": "never",
                  "expression": "false", "context": "Patient.identifier",
                  "element": "Patient.identifier:mrn"}
    resource = {"resourceType": "Patient", "identifier": [{"value": "1"}]}
    assert invariants.check_constraints(resource, [constraint]) == []
    plain = {**constraint, "element": "Patient.identifier"}
    assert [i.expression for i in invariants.check_constraints(resource, [plain])] == [
        ("Patient.identifier[0]",)]
