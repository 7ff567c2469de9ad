"""Slicing by value, pattern, type and profile; ordered and closed rules; extensions."""

from __future__ import annotations

from typing import Any

from fhir_server.validation.profiles import ProfileSet
from tests.unit.validation.profiles.conftest import BASE, SHOE
from tests.unit.validation.profiles.helpers import check

SLICES = BASE + "slices-patient"
TYPED = BASE + "typed-observation"
MRN = {"system": "urn:mrn", "value": "1"}
SSN = {"system": "urn:ssn", "value": "2"}
LAB = {"system": "http://terminology.hl7.org/CodeSystem/observation-category",
       "code": "laboratory"}


def _patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [MRN], **elements}


def _observation(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "Patient/1"}, "category": [{"coding": [LAB]}],
            **elements}


def test_value_discriminator(profiles: ProfileSet) -> None:
    other = {"system": "urn:other", "value": "3"}
    assert check(profiles, _patient(identifier=[MRN, SSN, other]), SLICES) == []
    # the mrn slice's children apply only to what its discriminator put in it
    assert check(profiles, _patient(identifier=[{"system": "urn:mrn"}]), SLICES) == [
        ("error", "required", "Patient.identifier[0].value", "Patient.identifier.value: "
         f"at least 1 required, 0 found (profile {SLICES})")]
    assert check(profiles, _patient(identifier=[other]), SLICES) == [
        ("error", "required", "Patient.identifier", "Patient.identifier:mrn: at least 1 "
         f"required, 0 found (profile {SLICES})")]


def test_ordered_slicing(profiles: ProfileSet) -> None:
    assert check(profiles, _patient(identifier=[SSN, MRN]), SLICES) == [
        ("error", "structure", "Patient.identifier[1]", "Patient.identifier: slice mrn is "
         f"out of order (profile {SLICES})")]


def test_pattern_discriminator(profiles: ProfileSet) -> None:
    both = [{"coding": [{"system": "urn:x", "code": "y"}]}, {"coding": [LAB], "text": "Lab"}]
    assert check(profiles, _observation(category=both), TYPED) == []
    [issue] = check(profiles, _observation(category=[{"coding": [{**LAB, "code": "x"}]}]),
                    TYPED)
    assert issue == ("error", "required", "Observation.category", "Observation.category:"
                     f"lab: at least 1 required, 0 found (profile {TYPED})")


def test_type_discriminator(profiles: ProfileSet) -> None:
    ucum = {"value": 1, "system": "http://unitsofmeasure.org", "code": "mg"}
    assert check(profiles, _observation(valueQuantity=ucum), TYPED) == []
    assert check(profiles, _observation(valueQuantity={"value": 1}), TYPED) == [
        ("error", "required", "Observation.valueQuantity.system",
         f"Observation.value[x].system: at least 1 required, 0 found (profile {TYPED})")]


def test_profile_discriminator(profiles: ProfileSet) -> None:
    conforming = {"resourceType": "Patient", "id": "a", "name": [{"family": "x"}],
                  "identifier": [{"system": "urn:a", "value": "1"}]}
    assert check(profiles, _patient(contained=[conforming]), SLICES) == []
    assert check(profiles, _patient(contained=[{"resourceType": "Patient", "id": "b"}]),
                 SLICES) == [
        ("error", "structure", "Patient.contained[0]", "Patient.contained: the value "
         f"matches none of the slices, and the slicing is closed (profile {SLICES})")]


def test_extensions_by_url_and_their_definition(profiles: ProfileSet) -> None:
    shoe = {"url": SHOE, "valueQuantity": {"value": 43}}
    assert check(profiles, _patient(extension=[shoe]), SLICES) == []
    assert check(profiles, _patient(extension=[{"url": SHOE, "valueString": "43"}]),
                 SLICES) == [
        ("error", "structure", "Patient.extension[0].valueString", "Extension.value[x]: type "
         f"string is not allowed here (allowed: Quantity; profile {SHOE})")]
    assert check(profiles, _patient(extension=[shoe, shoe]), SLICES) == [
        ("error", "structure", "Patient.extension", "Patient.extension:shoe: at most 1 "
         f"allowed, 2 found (profile {SLICES})")]
    other = {"url": "http://example.org/other", "valueString": "x"}
    assert check(profiles, _patient(extension=[other]), SLICES) == [
        ("error", "structure", "Patient.extension[0]", "Patient.extension: the value "
         f"matches none of the slices, and the slicing is closed (profile {SLICES})")]
