"""Which profiles apply: declared ones (unknown: a warning), required ones per type,
and the constraints handed to the FHIRPath evaluator."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fhir_server.definitions import Definitions
from fhir_server.errors import Issue
from fhir_server.paths import data_dir
from fhir_server.validation.profiles import ProfileError, ProfileSet, parse_required
from tests.unit.validation.profiles.conftest import BASE, CORE

HOSPITAL_PATIENT = "http://fhir-server.dev/StructureDefinition/hospital-patient"


def test_an_unknown_profile_is_a_warning(profiles: ProfileSet) -> None:
    patient = {"resourceType": "Patient", "meta": {"profile": [
        "http://example.org/unknown|1.0", CORE + "Patient"]}}
    assert [i.to_json() for i in profiles.issues(patient)] == [
        {"severity": "warning", "code": "not-supported", "diagnostics":
         "profile http://example.org/unknown|1.0 is not known to this server: not checked",
         "expression": ["Patient.meta.profile[0]"]}]


def test_a_profile_of_another_type_is_an_error(profiles: ProfileSet) -> None:
    patient = {"resourceType": "Patient", "meta": {"profile": [BASE + "typed-observation"]}}
    assert [i.to_json() for i in profiles.issues(patient)] == [
        {"severity": "error", "code": "invalid", "diagnostics": f"profile {BASE}"
         "typed-observation is for Observation, not Patient",
         "expression": ["Patient.meta.profile[0]"]}]


def test_a_versioned_declaration_finds_the_profile(profiles: ProfileSet) -> None:
    patient = {"resourceType": "Patient", "meta": {"profile": [HOSPITAL_PATIENT + "|1.0.0"]}}
    assert [i.expression for i in profiles.issues(patient)] == [
        ("Patient.identifier",), ("Patient.name",)]


def test_parse_required() -> None:
    assert parse_required(" Patient=http://a|1 , Encounter=http://b,Patient=http://c,") == {
        "Patient": ("http://a", "http://c"), "Encounter": ("http://b",)}
    with pytest.raises(ValueError, match="Type=url pairs"):
        parse_required("Patient")


def test_required_profiles_apply_without_declaration(definitions: Definitions,
                                                     profile_dir: Path) -> None:
    seen: list[tuple[str, list[str]]] = []

    def constraints(resource: dict[str, Any], found: Sequence[dict[str, Any]]) -> list[Issue]:
        seen.append((resource["resourceType"], [c["key"] for c in found]))
        return [Issue("invariant", "child-1 failed", expression=("Patient",))]

    required = {"Patient": (HOSPITAL_PATIENT, BASE + "child-patient")}
    profiles = ProfileSet.load(definitions, data_dir("profiles"), [profile_dir], required,
                               constraints)
    issues = profiles.issues({"resourceType": "Patient"})
    assert [(i.code, i.expression) for i in issues] == [
        ("required", ("Patient.identifier",)), ("required", ("Patient.name",)),
        ("required", ("Patient.identifier",)), ("required", ("Patient.birthDate",)),
        ("invariant", ("Patient",))]
    assert seen == [("Patient", ["child-1"])]  # only the profile's own constraints
    # a required profile also declared is checked once
    declared = {"resourceType": "Patient", "meta": {"profile": [HOSPITAL_PATIENT]}}
    assert len(profiles.issues(declared)) == len(issues)
    assert profiles.issues({"resourceType": "Observation"}) == []


@pytest.mark.parametrize(("required", "message"), [
    ({"Patient": ("http://example.org/nothing",)}, "is not a known profile"),
    ({"Encounter": (HOSPITAL_PATIENT,)}, "constrains Patient, not Encounter"),
])
def test_a_bad_required_profile_stops_the_start(definitions: Definitions,
                                               required: dict[str, tuple[str, ...]],
                                               message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        ProfileSet.load(definitions, data_dir("profiles"), required=required)


def test_the_shipped_hospital_profiles_carry_their_invariants(profiles: ProfileSet) -> None:
    appointment = profiles.profiles["http://fhir-server.dev/StructureDefinition/"
                                    "hospital-appointment"]
    assert [(c["key"], c["context"]) for c in appointment.constraints] == [
        ("hosp-appt-1", "Appointment")]
    document = profiles.profiles["http://fhir-server.dev/StructureDefinition/"
                                 "hospital-documentreference"]
    assert [(c["key"], c["context"]) for c in document.constraints] == [
        ("hosp-doc-1", "DocumentReference.content.attachment")]
