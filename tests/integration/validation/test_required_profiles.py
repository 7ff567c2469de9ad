"""Profiles on the write path, over HTTP: a server started with REQUIRED_PROFILES and
a PROFILES_DIR refuses what does not conform (422, nothing stored), plain and as Bundle
entries, and accepts what does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import running_server

HEADERS = {"Content-Type": "application/fhir+json"}
HOSPITAL_PATIENT = "http://fhir-server.dev/StructureDefinition/hospital-patient"
OWN = "http://example.org/fhir/StructureDefinition/coded-observation"


@pytest.fixture(scope="module")
def client(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    folder: Path = tmp_path_factory.mktemp("profiles-dir")
    (folder / "observation.json").write_text(json.dumps({
        "resourceType": "StructureDefinition", "url": OWN, "name": "CodedObservation",
        "status": "active", "kind": "resource", "abstract": False, "type": "Observation",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation",
        "derivation": "constraint", "differential": {"element": [
            {"id": "Observation.code", "path": "Observation.code",
             "patternCodeableConcept": {"coding": [{"system": "http://loinc.org"}]}}]}}))
    with running_server(database_url, PROFILES_DIR=str(folder),
                        REQUIRED_PROFILES=f"Patient={HOSPITAL_PATIENT}") as root, \
            httpx.Client(base_url=f"{root}/fhir", timeout=30) as c:
        yield c


def _family() -> str:
    return f"Prof{uuid.uuid4().hex[:12]}"


def _stored(client: httpx.Client, family: str) -> int:
    answer = client.get("/Patient", params={"family": family, "_total": "accurate"})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["total"])


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(path, content=orjson.dumps(body), headers=HEADERS)


def test_a_patient_without_identifier_is_refused(client: httpx.Client) -> None:
    family = _family()
    answer = _post(client, "/Patient", {"resourceType": "Patient",
                                        "name": [{"family": family}]})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/fhir+json")
    assert answer.json() == {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "required", "diagnostics": "Patient.identifier: at "
         f"least 1 required, 0 found (profile {HOSPITAL_PATIENT})",
         "expression": ["Patient.identifier"]}]}
    assert _stored(client, family) == 0


def test_a_conforming_patient_is_stored(client: httpx.Client) -> None:
    family = _family()
    answer = _post(client, "/Patient", {
        "resourceType": "Patient", "name": [{"family": family}],
        "identifier": [{"system": "urn:mrn", "value": family}]})
    assert answer.status_code == 201, answer.text
    assert _stored(client, family) == 1


def test_an_update_is_checked_too(client: httpx.Client) -> None:
    family = _family()
    answer = client.put(f"/Patient/{family}", content=orjson.dumps({
        "resourceType": "Patient", "id": family, "name": [{"family": family}],
        "identifier": [{"system": "urn:mrn"}]}), headers=HEADERS)
    assert answer.status_code == 422
    assert [i["expression"] for i in answer.json()["issue"]] == [
        ["Patient.identifier[0].value"]]
    assert client.get(f"/Patient/{family}").status_code == 404


def test_a_transaction_entry_that_does_not_conform_fails_it(client: httpx.Client) -> None:
    family = _family()
    good = {"resourceType": "Patient", "name": [{"family": family}],
            "identifier": [{"system": "urn:mrn", "value": "1"}]}
    bad = {"resourceType": "Patient", "name": [{"family": family}]}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "POST", "url": "Patient"}} for r in (good, bad)]}
    answer = _post(client, "", bundle)
    assert answer.status_code == 422, answer.text
    issue = answer.json()["issue"][0]
    assert (issue["code"], issue["expression"]) == ("required", ["Patient.identifier"])
    assert _stored(client, family) == 0
    batch = {**bundle, "type": "batch"}
    answer = _post(client, "", batch)
    assert answer.status_code == 200, answer.text
    assert [e["response"]["status"][:3] for e in answer.json()["entry"]] == ["201", "422"]
    assert _stored(client, family) == 1


def test_declared_profiles_from_profiles_dir_and_unknown_ones(client: httpx.Client) -> None:
    observation = {"resourceType": "Observation", "status": "final",
                   "meta": {"profile": [OWN, "http://example.org/not-known"]},
                   "code": {"coding": [{"system": "urn:other", "code": "x"}]}}
    answer = _post(client, "/Observation", observation)
    assert answer.status_code == 422
    assert answer.json()["issue"] == [
        {"severity": "warning", "code": "not-supported", "diagnostics": "profile "
         "http://example.org/not-known is not known to this server: not checked",
         "expression": ["Observation.meta.profile[1]"]},
        {"severity": "error", "code": "value", "diagnostics": "Observation.code: must match "
         "the pattern {'coding': [{'system': 'http://loinc.org'}]} (profile "
         f"{OWN})", "expression": ["Observation.code"]}]
    observation["code"] = {"coding": [{"system": "http://loinc.org", "code": "1-8"}]}
    assert _post(client, "/Observation", observation).status_code == 201
