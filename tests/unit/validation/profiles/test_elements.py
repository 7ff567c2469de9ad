"""Cardinality, fixed and pattern values, choice types and reference targets."""

from __future__ import annotations

from fhir_server.validation.profiles import ProfileSet
from tests.unit.validation.profiles.conftest import BASE
from tests.unit.validation.profiles.helpers import check

HOSPITAL = "http://fhir-server.dev/StructureDefinition/"
PATIENT = HOSPITAL + "hospital-patient"
SLICES = BASE + "slices-patient"
MRN = {"system": "urn:mrn", "value": "1"}


def test_cardinality_min_is_an_error_naming_the_element(profiles: ProfileSet) -> None:
    assert check(profiles, {"resourceType": "Patient"}, PATIENT) == [
        ("error", "required", "Patient.identifier", "Patient.identifier: at least 1 "
         f"required, 0 found (profile {PATIENT})"),
        ("error", "required", "Patient.name", "Patient.name: at least 1 required, 0 found "
         f"(profile {PATIENT})")]


def test_cardinality_of_children_is_checked_in_each_item(profiles: ProfileSet) -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Chalmers"}],
               "identifier": [{"system": "urn:a", "value": "1"}, {"system": "urn:b"}]}
    assert check(profiles, patient, PATIENT) == [
        ("error", "required", "Patient.identifier[1].value", "Patient.identifier.value: "
         f"at least 1 required, 0 found (profile {PATIENT})")]


def test_a_valid_patient_has_no_issue(profiles: ProfileSet) -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Chalmers"}],
               "identifier": [{"system": "urn:a", "value": "1"}]}
    assert check(profiles, patient, PATIENT) == []


def test_cardinality_max_of_a_slice(profiles: ProfileSet) -> None:
    patient = {"resourceType": "Patient", "identifier": [MRN, {**MRN, "value": "2"}]}
    assert check(profiles, patient, SLICES) == [
        ("error", "structure", "Patient.identifier", "Patient.identifier:mrn: at most 1 "
         f"allowed, 2 found (profile {SLICES})")]


def test_fixed_value(profiles: ProfileSet) -> None:
    base = {"resourceType": "Patient", "identifier": [MRN]}
    assert check(profiles, {**base, "gender": "female"}, SLICES) == []
    assert check(profiles, {**base, "gender": "male"}, SLICES) == [
        ("error", "value", "Patient.gender", "Patient.gender: must be exactly 'female', "
         f"not 'male' (profile {SLICES})")]


def test_pattern_value(profiles: ProfileSet) -> None:
    base = {"resourceType": "Patient", "identifier": [MRN]}
    system = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
    good = {"coding": [{"system": "urn:other", "code": "x"}, {"system": system, "code": "M"}],
            "text": "married"}
    assert check(profiles, {**base, "maritalStatus": good}, SLICES) == []
    bad = {"coding": [{"system": "urn:other", "code": "M"}]}
    [issue] = check(profiles, {**base, "maritalStatus": bad}, SLICES)
    assert issue[:3] == ("error", "value", "Patient.maritalStatus")
    assert issue[3].startswith("Patient.maritalStatus: must match the pattern {'coding'")


def test_choice_types_restricted(profiles: ProfileSet) -> None:
    url = BASE + "typed-observation"
    base = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "Patient/1"},
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "laboratory"}]}]}
    assert check(profiles, {**base, "valueString": "high"}, url) == []
    assert check(profiles, {**base, "valueBoolean": True}, url) == [
        ("error", "structure", "Observation.valueBoolean", "Observation.value[x]: type "
         f"boolean is not allowed here (allowed: Quantity, string; profile {url})"),
        ("error", "structure", "Observation.valueBoolean", "Observation.value[x]: the value "
         f"matches none of the slices, and the slicing is closed (profile {url})")]


def test_reference_target_profile(profiles: ProfileSet) -> None:
    url = HOSPITAL + "hospital-encounter"
    base = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
            "period": {"start": "2026-01-01"}}
    for good in ({"reference": "Patient/1"}, {"reference": "https://x.org/fhir/Group/2"},
                 {"reference": "Patient/1/_history/2"}, {"type": "Patient", "display": "a"},
                 {"display": "no target to tell"}, {"reference": "urn:uuid:1"}):
        assert check(profiles, {**base, "subject": good}, url) == []
    assert check(profiles, {**base, "subject": {"reference": "Practitioner/1"}}, url) == [
        ("error", "structure", "Encounter.subject", "Encounter.subject: a reference to "
         f"Practitioner is not allowed here (allowed: Group, Patient; profile {url})")]


def test_data_type_children(profiles: ProfileSet) -> None:
    url = HOSPITAL + "hospital-encounter"
    encounter = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
                 "subject": {"reference": "Patient/1"}, "period": {"end": "2026-01-01"}}
    assert check(profiles, encounter, url) == [
        ("error", "required", "Encounter.period.start", "Encounter.period.start: at least 1 "
         f"required, 0 found (profile {url})")]
