"""The US Core bundles against the profiles the server has.

The US Core StructureDefinitions are not shipped: the npm registry has no
``hl7.fhir.us.core`` package (nor does PyPI), and the FHIR package registry is not
reachable from where this repository is built. So the bundles' declared US Core
profiles are unknown here (a warning each); the R4 vital signs profiles they also
declare (``vitalsigns``, ``bp``, ``bmi``, ``bodyweight``, ``bodyheight``) are checked,
and so are the hospital profiles, required for every Patient, Encounter, Appointment
and DocumentReference.
"""

from __future__ import annotations

import collections
from typing import Any

import orjson
import pytest

from fhir_server.definitions import Definitions
from fhir_server.paths import data_dir
from fhir_server.validation.profiles import ProfileSet
from tests.data import us_core_bundles

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
