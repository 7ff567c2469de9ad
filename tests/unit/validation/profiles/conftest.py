"""Test profiles (written to a folder as an operator's would be) and the ProfileSet over
them and the shipped ones, built once per session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_server.definitions import Definitions
from fhir_server.paths import data_dir
from fhir_server.validation.profiles import ProfileSet

BASE = "http://example.org/fhir/StructureDefinition/"
CORE = "http://hl7.org/fhir/StructureDefinition/"
SHOE = BASE + "shoe-size"
COLOURS = "http://example.org/fhir/ValueSet/colours"
COLOUR_SYSTEM = "http://example.org/fhir/CodeSystem/colours"


def structure(id: str, type_name: str, elements: list[dict[str, Any]],
              base: str | None = None) -> dict[str, Any]:
    """A differential-only StructureDefinition."""
    return {"resourceType": "StructureDefinition", "id": id, "url": BASE + id,
            "name": id.replace("-", ""), "status": "active", "fhirVersion": "4.0.1",
            "kind": "complex-type" if type_name == "Extension" else "resource",
            "abstract": False, "type": type_name, "baseDefinition": base or CORE + type_name,
            "derivation": "constraint", "differential": {"element": elements}}


def _binding(strength: str) -> dict[str, Any]:
    return {"strength": strength, "valueSet": COLOURS}


PROFILES = [
    structure("slices-patient", "Patient", [
        {"id": "Patient.identifier", "path": "Patient.identifier", "slicing": {
            "discriminator": [{"type": "value", "path": "system"}], "ordered": True,
            "rules": "open"}},
        {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn",
         "min": 1, "max": "1"},
        {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system",
         "min": 1, "fixedUri": "urn:mrn"},
        {"id": "Patient.identifier:mrn.value", "path": "Patient.identifier.value", "min": 1},
        {"id": "Patient.identifier:ssn", "path": "Patient.identifier", "sliceName": "ssn",
         "max": "1"},
        {"id": "Patient.identifier:ssn.system", "path": "Patient.identifier.system",
         "fixedUri": "urn:ssn"},
        {"id": "Patient.maritalStatus", "path": "Patient.maritalStatus",
         "patternCodeableConcept": {"coding": [{
             "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"}]}},
        {"id": "Patient.gender", "path": "Patient.gender", "fixedCode": "female"},
        {"id": "Patient.extension", "path": "Patient.extension", "slicing": {
            "discriminator": [{"type": "value", "path": "url"}], "rules": "closed"}},
        {"id": "Patient.extension:shoe", "path": "Patient.extension", "sliceName": "shoe",
         "max": "1", "type": [{"code": "Extension", "profile": [SHOE]}]},
        {"id": "Patient.contained", "path": "Patient.contained", "slicing": {
            "discriminator": [{"type": "profile", "path": "$this"}], "rules": "closed"}},
        {"id": "Patient.contained:hospital", "path": "Patient.contained",
         "sliceName": "hospital", "type": [{"code": "Resource", "profile": [
             "http://fhir-server.dev/StructureDefinition/hospital-patient"]}]},
    ]),
    structure("child-patient", "Patient", [
        {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1,
         "constraint": [{"key": "child-1", "severity": "error", "human": "born",
                         "expression": "birthDate.exists()"}]},
    ], base=BASE + "slices-patient"),
    structure("shoe-size", "Extension", [
        {"id": "Extension.url", "path": "Extension.url", "fixedUri": SHOE},
        {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1,
         "type": [{"code": "Quantity"}]},
    ]),
    structure("typed-observation", "Observation", [
        {"id": "Observation.value[x]", "path": "Observation.value[x]", "slicing": {
            "discriminator": [{"type": "type", "path": "$this"}], "rules": "closed"},
         "type": [{"code": "Quantity"}, {"code": "string"}]},
        {"id": "Observation.value[x]:valueQuantity", "path": "Observation.value[x]",
         "sliceName": "valueQuantity", "type": [{"code": "Quantity"}]},
        {"id": "Observation.value[x]:valueQuantity.system",
         "path": "Observation.value[x].system", "min": 1,
         "fixedUri": "http://unitsofmeasure.org"},
        {"id": "Observation.value[x]:valueString", "path": "Observation.value[x]",
         "sliceName": "valueString", "type": [{"code": "string"}]},
        {"id": "Observation.category", "path": "Observation.category", "slicing": {
            "discriminator": [{"type": "pattern", "path": "$this"}], "rules": "open"}},
        {"id": "Observation.category:lab", "path": "Observation.category",
         "sliceName": "lab", "min": 1, "patternCodeableConcept": {"coding": [{
             "system": "http://terminology.hl7.org/CodeSystem/observation-category",
             "code": "laboratory"}]}},
        {"id": "Observation.subject", "path": "Observation.subject", "min": 1,
         "type": [{"code": "Reference", "targetProfile": [CORE + "Patient"]}]},
    ]),
    structure("bound-observation", "Observation", [
        {"id": "Observation.code", "path": "Observation.code", "binding": _binding("required")},
        {"id": "Observation.method", "path": "Observation.method",
         "binding": _binding("extensible")},
        {"id": "Observation.bodySite", "path": "Observation.bodySite",
         "binding": _binding("preferred")},
        {"id": "Observation.interpretation", "path": "Observation.interpretation",
         "binding": _binding("example")},
    ]),
]
TERMINOLOGY = [
    {"resourceType": "CodeSystem", "url": COLOUR_SYSTEM, "status": "active",
     "content": "complete", "concept": [{"code": "red"}, {"code": "green"}]},
    {"resourceType": "ValueSet", "url": COLOURS, "status": "active",
     "compose": {"include": [{"system": COLOUR_SYSTEM}]}},
]


@pytest.fixture(scope="session")
def profile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An operator folder: single files and a Bundle."""
    folder = tmp_path_factory.mktemp("operator-profiles")
    for sd in PROFILES:
        (folder / f"StructureDefinition-{sd['id']}.json").write_text(json.dumps(sd))
    package = folder / "package"
    package.mkdir()
    (package / "package.json").write_text('{"name": "example.terminology"}')
    (package / "terminology.json").write_text(json.dumps(
        {"resourceType": "Bundle", "type": "collection",
         "entry": [{"resource": r} for r in TERMINOLOGY]}))
    return folder


@pytest.fixture(scope="session")
def definitions() -> Definitions:
    return Definitions.load()


@pytest.fixture(scope="session")
def profiles(definitions: Definitions, profile_dir: Path) -> ProfileSet:
    return ProfileSet.load(definitions, data_dir("profiles"), [profile_dir])
