"""The CapabilityStatement: operations with their definitions (served and searchable),
includes and reverse includes, supported profiles, and ``mode``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import running_server
from tests.data import TEST_PATIENT_PROFILE

TEST_PROFILE = "http://example.org/fhir/StructureDefinition/test-patient"
#: the shipped hospital profile of Patient (profiles/hospital/)
HOSPITAL_PATIENT = "http://fhir-server.dev/StructureDefinition/hospital-patient"
SPEC_OPERATIONS = {
    "validate": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
    "everything": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    "export": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
}


def _resources(statement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["type"]: r for r in statement["rest"][0]["resource"]}


@pytest.mark.http_only
def test_every_operation_has_a_definition_served_and_found(
        client: httpx.Client, capability_statement: dict[str, Any]) -> None:
    rest = capability_statement["rest"][0]
    declared = [*rest.get("operation", []),
                *(o for r in rest["resource"] for o in r.get("operation", []))]
    assert declared, "no operation advertised"
    for operation in {o["definition"]: o for o in declared}.values():
        url = operation["definition"]
        found = client.get("/OperationDefinition", params={"url": url})
        assert found.status_code == 200, found.text
        matches = [e["resource"] for e in found.json().get("entry", [])
                   if e["search"]["mode"] == "match"]
        assert [m["url"] for m in matches] == [url]
        definition = matches[0]
        assert definition["code"] == operation["name"]
        read = client.get(f"/OperationDefinition/{definition['id']}")
        assert (read.status_code, read.json()) == (200, definition)
        for parameter in definition.get("parameter", []):
            # a parameter of parts (lookup's designation, property) has no type
            assert {"name", "use", "min", "max"} <= set(parameter)


@pytest.mark.requires(operation="validate")
def test_the_validate_definition_declares_its_parameters(client: httpx.Client) -> None:
    read = client.get("/OperationDefinition/Resource-validate")
    assert read.status_code == 200
    body = read.json()
    assert (body["url"], body["code"], body["affectsState"]) == (
        SPEC_OPERATIONS["validate"], "validate", False)
    assert (body["system"], body["type"], body["instance"]) == (False, True, True)
    assert [(p["name"], p["use"], p["min"], p["max"], p["type"])
            for p in body["parameter"]] == [
        ("resource", "in", 0, "1", "Resource"), ("mode", "in", 0, "1", "code"),
        ("profile", "in", 0, "1", "uri"), ("return", "out", 1, "1", "OperationOutcome")]


@pytest.mark.in_process
def test_our_operations_are_declared_where_they_run(
        capability_statement: dict[str, Any], fhir_base: str) -> None:
    rest = capability_statement["rest"][0]
    system = {o["name"]: o["definition"] for o in rest["operation"]}
    assert system == {"reindex": f"{fhir_base}/OperationDefinition/reindex",
                      "export": SPEC_OPERATIONS["export"]}
    resources = _resources(capability_statement)
    by_type = {t: {o["name"]: o["definition"] for o in r.get("operation", [])}
               for t, r in resources.items()}
    assert by_type["Patient"] == {
        "reindex": f"{fhir_base}/OperationDefinition/reindex",
        "validate": SPEC_OPERATIONS["validate"], "export": SPEC_OPERATIONS["export"],
        "everything": SPEC_OPERATIONS["everything"]}
    assert by_type["Observation"] == {
        "reindex": f"{fhir_base}/OperationDefinition/reindex",
        "validate": SPEC_OPERATIONS["validate"]}


@pytest.mark.in_process
def test_includes_and_reverse_includes_come_from_the_reference_parameters(
        capability_statement: dict[str, Any]) -> None:
    resources = _resources(capability_statement)
    patient = resources["Patient"]
    assert patient["searchInclude"][0] == "*"
    assert {"Patient:general-practitioner", "Patient:link", "Patient:organization"} <= set(
        patient["searchInclude"])
    assert patient["searchRevInclude"][0] == "*"
    assert {"Observation:subject", "Encounter:patient", "Condition:subject",
            "Group:member"} <= set(patient["searchRevInclude"])
    assert "Observation:subject" not in resources["Organization"]["searchRevInclude"]
    # spec base definitions are not "supported profiles"; the shipped ones are
    assert {t for t, r in resources.items() if "supportedProfile" in r} == {
        "Patient", "Encounter", "Appointment", "DocumentReference", "Observation"}
    assert f"http://hl7.org/fhir/StructureDefinition/{'Patient'}" not in \
        resources["Patient"]["supportedProfile"]


def test_mode_terse_is_the_required_subset(client: httpx.Client,
                                           capability_statement: dict[str, Any]) -> None:
    answer = client.get("/metadata", params={"mode": "terse"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["meta"] == {"tag": [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
        "code": "SUBSETTED"}]}
    assert set(body) <= {"resourceType", "id", "meta", "url", "name", "status", "date",
                         "kind", "software", "implementation", "fhirVersion", "format",
                         "rest"}
    assert [set(r) for r in body["rest"]] == [{"mode", "resource"}]
    assert body["rest"][0]["resource"] == [
        {"type": r["type"]} for r in capability_statement["rest"][0]["resource"]]
    for key in ("status", "kind", "fhirVersion", "format"):
        assert body[key] == capability_statement[key]


def test_mode_full_and_normative_are_the_whole_statement(client: httpx.Client) -> None:
    full = client.get("/metadata").json()
    assert client.get("/metadata", params={"mode": "full"}).json() == full
    assert client.get("/metadata", params={"mode": "normative"}).json() == full


@pytest.mark.parametrize(("mode", "diagnostics"), [
    ("brief", "unknown mode 'brief' for metadata: full, normative or terse (terminology: "
              "this server publishes no TerminologyCapabilities)"),
    ("terminology", "unknown mode 'terminology' for metadata: full, normative or terse "
                    "(terminology: this server publishes no TerminologyCapabilities)"),
])
@pytest.mark.in_process
def test_an_unknown_mode_is_400(client: httpx.Client, mode: str, diagnostics: str) -> None:
    answer = client.get("/metadata", params={"mode": mode})
    assert answer.status_code == 400
    issue = answer.json()["issue"][0]
    assert (issue["code"], issue["diagnostics"].endswith(diagnostics)) == ("invalid", True)


# -- a server with a profile of its own in profiles/ ------------------------------------


@pytest.fixture(scope="module")
def profiled(database_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[httpx.Client]:
    """A second server with TEST_PATIENT_PROFILE in its PROFILES_DIR."""
    folder = tmp_path_factory.mktemp("profiles")
    shutil.copy(TEST_PATIENT_PROFILE, folder / Path(TEST_PATIENT_PROFILE).name)
    with running_server(database_url, PROFILES_DIR=str(folder)) as base, \
            httpx.Client(base_url=f"{base}/fhir", timeout=30) as c:
        yield c


@pytest.mark.http_only
def test_a_profile_in_profiles_is_a_supported_profile(profiled: httpx.Client) -> None:
    resources = _resources(profiled.get("/metadata").json())
    assert resources["Patient"]["supportedProfile"] == [TEST_PROFILE, HOSPITAL_PATIENT]
    assert "supportedProfile" not in resources["Practitioner"]


@pytest.mark.http_only
def test_validate_against_the_profile(profiled: httpx.Client) -> None:
    def validate(resource: dict[str, Any]) -> list[dict[str, Any]]:
        answer = profiled.post("/Patient/$validate", params={"profile": TEST_PROFILE},
                               json=resource)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["issue"])

    good = {"resourceType": "Patient", "gender": "male", "name": [{"family": "Ok"}]}
    assert validate(good) == [{"severity": "information", "code": "informational",
                               "diagnostics": "All OK", "expression": ["Patient"]}]
    bad = {"resourceType": "Patient", "name": [{"given": ["No"]}, {"family": "Yes"}],
           "deceasedBoolean": False, "photo": [{"contentType": "image/png"}]}
    of = f"(profile {TEST_PROFILE})"
    assert validate(bad) == [
        {"severity": "error", "code": "required", "diagnostics":
         f"Patient.name.family: at least 1 required, 0 found {of}",
         "expression": ["Patient.name[0].family"]},
        {"severity": "error", "code": "required", "diagnostics":
         f"Patient.gender: at least 1 required, 0 found {of}",
         "expression": ["Patient.gender"]},
        {"severity": "error", "code": "structure", "diagnostics":
         f"Patient.deceased[x]: at most 0 allowed, 1 found {of}",
         "expression": ["Patient.deceased"]},
        {"severity": "error", "code": "structure", "diagnostics":
         f"Patient.photo: at most 0 allowed, 1 found {of}",
         "expression": ["Patient.photo"]}]
    # the profile is for Patients only
    answer = profiled.post("/Observation/$validate", params={"profile": TEST_PROFILE},
                           json={"resourceType": "Observation", "status": "final",
                                 "code": {"text": "x"}})
    assert answer.json()["issue"] == [{
        "severity": "error", "code": "structure", "diagnostics":
        f"the profile {TEST_PROFILE} is for Patient, not Observation",
        "expression": ["Observation"]}]
