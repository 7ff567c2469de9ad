"""$validate at type and instance level: exact statuses and OperationOutcomes, and
nothing stored (the system history's newest entry and the counts are unchanged)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

HEADERS = {"Content-Type": "application/fhir+json"}
ALL_OK = {"resourceType": "OperationOutcome", "issue": [
    {"severity": "information", "code": "informational", "diagnostics": "All OK",
     "expression": ["Patient"]}]}

pytestmark = pytest.mark.requires(operation="validate")


def _validate(client: httpx.Client, path: str, body: dict[str, Any] | None = None,
              **params: str) -> httpx.Response:
    if body is None:
        return client.get(path, params=params)
    return client.post(path, json=body, params=params, headers=HEADERS)


def _parameters(resource: dict[str, Any] | None = None, **values: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if resource is not None:
        parts.append({"name": "resource", "resource": resource})
    for name, value in values.items():
        parts.append({"name": name, "valueCode" if name == "mode" else "valueUri": value})
    return {"resourceType": "Parameters", "parameter": parts}


def _newest(client: httpx.Client) -> list[str]:
    """The Patient history's newest entry (what any write of a Patient would change;
    the system history is not used: the audit trail adds to it on every request)."""
    found = client.get("/Patient/_history", params={"_count": "1"}).json()
    return [e["fullUrl"] + e["resource"]["meta"]["versionId"] if "resource" in e
            else e["request"]["url"] for e in found.get("entry", [])]


@pytest.fixture
def unchanged(client: httpx.Client) -> Iterator[None]:
    """Asserts after the test that nothing was written during it."""
    before = _newest(client)
    yield
    assert _newest(client) == before


@pytest.fixture
def stored(client: httpx.Client) -> dict[str, Any]:
    """A stored Patient (created before ``unchanged`` looks)."""
    patient = {"resourceType": "Patient", "name": [{"family": f"V{uuid.uuid4().hex[:8]}"}]}
    answer = client.post("/Patient", json=patient, headers=HEADERS)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_a_valid_resource_is_all_ok(client: httpx.Client, unchanged: None) -> None:
    answer = _validate(client, "/Patient/$validate",
                       _parameters({"resourceType": "Patient", "gender": "male"}))
    assert answer.status_code == 200, answer.text
    assert answer.json() == ALL_OK


def test_a_bare_resource_is_validated_too(client: httpx.Client, unchanged: None) -> None:
    answer = _validate(client, "/Patient/$validate", {"resourceType": "Patient"})
    assert (answer.status_code, answer.json()) == (200, ALL_OK)


def test_an_invalid_resource_is_200_with_every_issue_located(
        client: httpx.Client, unchanged: None) -> None:
    patient = {"resourceType": "Patient", "gender": "unknown-code",
               "birthDate": "2020-13-45", "name": [{"family": 7}]}
    answer = _validate(client, "/Patient/$validate", _parameters(patient, mode="create"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    located = {tuple(i["expression"]): i["severity"] for i in body["issue"]}
    assert located == {("Patient.gender",): "error", ("Patient.birthDate",): "error",
                       ("Patient.name[0].family",): "error"}
    # what a create of it answers: the same issues, as a 422
    create = client.post("/Patient", json=patient, headers=HEADERS)
    assert create.status_code == 422
    written = create.json()["issue"]
    assert [(i["code"], i["expression"]) for i in written] == [
        (i["code"], i["expression"]) for i in body["issue"]]
    # (a Bundle entry's error names the entry before the diagnostics)
    assert all(w["diagnostics"].endswith(i["diagnostics"])
               for w, i in zip(written, body["issue"], strict=True))


def test_a_resource_of_another_type_is_an_issue(client: httpx.Client,
                                                unchanged: None) -> None:
    answer = _validate(client, "/Patient/$validate", {"resourceType": "Observation"})
    assert answer.status_code == 200
    issues = answer.json()["issue"]
    assert issues[0] == {"severity": "error", "code": "invalid", "diagnostics":
                         "resourceType 'Observation' does not match 'Patient' in the URL",
                         "expression": ["resourceType"]}
    assert all(i.get("expression") for i in issues)


def test_the_stored_resource_is_validated_by_get(client: httpx.Client,
                                                 stored: dict[str, Any],
                                                 unchanged: None) -> None:
    answer = client.get(f"/Patient/{stored['id']}/$validate")
    assert (answer.status_code, answer.json()) == (200, ALL_OK)


def test_update_mode_checks_the_id_against_the_url(client: httpx.Client,
                                                   stored: dict[str, Any],
                                                   unchanged: None) -> None:
    url = f"/Patient/{stored['id']}/$validate"
    same = {**stored, "gender": "female"}
    answer = _validate(client, url, _parameters(same, mode="update"))
    assert (answer.status_code, answer.json()) == (200, ALL_OK)
    other = {**stored, "id": "someone-else"}
    answer = _validate(client, url, _parameters(other, mode="update"))
    assert answer.status_code == 200
    assert answer.json()["issue"] == [{
        "severity": "error", "code": "invalid", "diagnostics":
        f"the resource id 'someone-else' does not match {stored['id']!r} in the URL",
        "expression": ["Patient.id"]}]
    missing = {k: v for k, v in stored.items() if k != "id"}
    answer = _validate(client, url, _parameters(missing, mode="update"))
    assert answer.json()["issue"] == [{
        "severity": "error", "code": "required",
        "diagnostics": "an update needs the resource's id", "expression": ["Patient.id"]}]


def test_update_mode_at_type_level_needs_a_stored_resource(client: httpx.Client,
                                                           stored: dict[str, Any],
                                                           unchanged: None) -> None:
    answer = _validate(client, "/Patient/$validate", _parameters(stored, mode="update"))
    assert (answer.status_code, answer.json()) == (200, ALL_OK)
    ghost = {"resourceType": "Patient", "id": f"ghost-{uuid.uuid4().hex[:8]}"}
    answer = _validate(client, "/Patient/$validate", _parameters(ghost, mode="update"))
    assert answer.status_code == 200
    assert answer.json()["issue"] == [{
        "severity": "error", "code": "not-found", "diagnostics":
        f"Patient/{ghost['id']} does not exist (or was deleted): there is nothing to "
        "update", "expression": ["Patient.id"]}]


def test_delete_mode_is_ok_unless_a_reason_exists(client: httpx.Client,
                                                  stored: dict[str, Any],
                                                  unchanged: None) -> None:
    answer = _validate(client, f"/Patient/{stored['id']}/$validate", mode="delete")
    assert (answer.status_code, answer.json()) == (200, ALL_OK)
    # still there: the check deleted nothing
    assert client.get(f"/Patient/{stored['id']}").status_code == 200


@pytest.mark.requires(interaction=("AuditEvent", "create"))
def test_an_audit_event_may_not_be_deleted(client: httpx.Client) -> None:
    event = {"resourceType": "AuditEvent",
             "type": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                      "code": "110100"},
             "recorded": "2024-01-01T00:00:00Z",
             "agent": [{"requestor": True, "who": {"display": "a test"}}],
             "source": {"observer": {"display": "a test"}}}
    created = client.post("/AuditEvent", json=event, headers=HEADERS)
    assert created.status_code == 201, created.text
    answer = _validate(client, f"/AuditEvent/{created.json()['id']}/$validate",
                       mode="delete")
    assert answer.status_code == 200
    issues = answer.json()["issue"]
    assert {"severity": "error", "code": "business-rule", "diagnostics":
            "AuditEvent resources are the audit trail: they cannot be deleted",
            "expression": ["AuditEvent"]} in issues
    # a token without the d permission on AuditEvent is a second reason
    assert [i["code"] for i in issues] in (["business-rule"], ["forbidden", "business-rule"])


def test_an_unknown_profile_is_an_error_issue(client: httpx.Client,
                                              unchanged: None) -> None:
    url = "http://example.org/StructureDefinition/nothing-like-it"
    answer = _validate(client, "/Patient/$validate",
                       _parameters({"resourceType": "Patient"}, profile=url))
    assert answer.status_code == 200
    assert answer.json()["issue"] == [{
        "severity": "error", "code": "not-supported",
        "diagnostics": f"the profile {url} is not known to this server",
        "expression": ["Patient.meta.profile"]}]


def test_the_base_profile_of_the_type_is_the_plain_check(client: httpx.Client,
                                                         unchanged: None) -> None:
    base = "http://hl7.org/fhir/StructureDefinition/Patient"
    answer = _validate(client, "/Patient/$validate", {"resourceType": "Patient"},
                       profile=base)
    assert (answer.status_code, answer.json()) == (200, ALL_OK)
    other = "http://hl7.org/fhir/StructureDefinition/Observation"
    answer = _validate(client, "/Patient/$validate", {"resourceType": "Patient"},
                       profile=other)
    assert answer.json()["issue"] == [{
        "severity": "error", "code": "structure",
        "diagnostics": f"the profile {other} is for Observation, not Patient",
        "expression": ["Patient"]}]


@pytest.mark.parametrize(("path", "body", "params", "status", "diagnostics"), [
    ("/Patient/$validate", None, {}, 400,
     "Patient/$validate needs a resource: a Parameters body with a 'resource' "
     "parameter, or the resource itself"),
    ("/Patient/$validate", _parameters({"resourceType": "Patient"}, mode="merge"), {}, 400,
     "unknown $validate mode 'merge': create, update or delete"),
    ("/Patient/$validate", {"resourceType": "Parameters",
                            "parameter": [{"name": "colour", "valueString": "red"}]},
     {}, 400, "$validate has no parameter 'colour' (resource, mode, profile)"),
    ("/Patient/$validate", _parameters(mode="delete"), {}, 400,
     "mode=delete validates the deletion of one resource: [base]/Patient/[id]/$validate"),
    ("/Patient/no-such-patient/$validate", None, {}, 404,
     "Patient/no-such-patient is not known"),
    ("/NoSuchType/$validate", {"resourceType": "Patient"}, {}, 404,
     "unknown resource type 'NoSuchType'"),
])
def test_a_broken_request_is_an_error(client: httpx.Client, unchanged: None, path: str,
                                      body: dict[str, Any] | None,
                                      params: dict[str, str], status: int,
                                      diagnostics: str) -> None:
    if body is None and path.endswith("/Patient/$validate"):
        answer = client.post(path, content=b"", headers=HEADERS)
    else:
        answer = _validate(client, path, body, **params)
    assert answer.status_code == status, answer.text
    # a Bundle entry's error names the entry before it
    assert answer.json()["issue"][0]["diagnostics"].endswith(diagnostics)


@pytest.mark.http_only
def test_get_at_type_level_is_405(client: httpx.Client) -> None:
    answer = client.get("/Patient/$validate")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


@pytest.mark.in_process
def test_nothing_is_stored_by_any_mode(client: httpx.Client, database_url: str,
                                       stored: dict[str, Any]) -> None:
    def counts() -> tuple[int, ...]:
        with psycopg.connect(database_url) as conn:
            return tuple(
                int(conn.execute(f"SELECT count(*) FROM {table} "
                                 "WHERE resource_type <> 'AuditEvent'").fetchone()[0])
                for table in ("resource", "resource_history"))
    before = counts()
    invalid = {"resourceType": "Patient", "gender": "nope"}
    for body, params in ((_parameters(invalid, mode="create"), {}),
                         (_parameters({**stored, "gender": "other"}, mode="update"), {}),
                         ({"resourceType": "Patient"}, {})):
        assert _validate(client, "/Patient/$validate", body, **params).status_code == 200
    assert _validate(client, f"/Patient/{stored['id']}/$validate",
                     mode="delete").status_code == 200
    assert counts() == before
    history = client.get(f"/Patient/{stored['id']}/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["1"]
