"""Writes breaking an R4 invariant are refused with 422 and the exact issue, and nothing
is stored; ``$validate`` reports the same issue with a 200."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

HEADERS = {"Content-Type": "application/fhir+json"}
XSS = ('<div xmlns="http://www.w3.org/1999/xhtml"><p>Hi</p>'
       '<img src="x.png" onerror="alert(document.cookie)"/></div>')


#: the Bundle-wrapped run names the entry an issue is about
_ENTRY = re.compile(r"^entry\[\d+\] \([A-Z]+ [^)]*\): ")


def _outcome(answer: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    for issue in body.get("issue", ()):
        issue["diagnostics"] = _ENTRY.sub("", issue.get("diagnostics", ""))
    return body


def _family() -> str:
    return f"Inv{uuid.uuid4().hex[:10]}"


def _count(client: httpx.Client, family: str) -> int:
    found = client.get("/Patient", params={"family": family, "_summary": "count"})
    assert found.status_code == 200, found.text
    return int(found.json()["total"])


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("pat-1", {"contact": [{"gender": "male"}]}, {
        "severity": "error", "code": "invariant",
        "diagnostics": "pat-1: SHALL at least contain a contact's details or a reference "
                       "to an organization",
        "expression": ["Patient.contact[0]"]}),
    ("per-1", {"identifier": [{"value": "1", "period": {
        "start": "2024-02-01", "end": "2024-01-01"}}]}, {
        "severity": "error", "code": "invariant",
        "diagnostics": "per-1: If present, start SHALL have a lower value than end",
        "expression": ["Patient.identifier[0].period"]}),
    ("txt-1", {"text": {"status": "generated", "div": XSS}}, {
        "severity": "error", "code": "invariant",
        "diagnostics": "txt-1: The narrative SHALL contain only the basic html formatting "
                       "elements and attributes described in chapters 7-11 (except section 4 "
                       "of chapter 9) and 15 of the HTML 4.0 standard, <a> elements (either "
                       "name or href), images and internally contained style attributes: "
                       "the narrative may not hold an event attribute (img.onerror)",
        "expression": ["Patient.text.div"]}),
    ("target", {"generalPractitioner": [{"reference": "Observation/1"}]}, {
        "severity": "error", "code": "structure",
        "diagnostics": "Patient.generalPractitioner[0]: a reference to Observation is not "
                       "allowed here (allowed: Organization, Practitioner, PractitionerRole)",
        "expression": ["Patient.generalPractitioner[0]"]}),
]


@pytest.mark.parametrize(("fields", "issue"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_write_breaking_an_invariant_is_422_and_not_stored(
        client: httpx.Client, fields: dict[str, Any], issue: dict[str, Any]) -> None:
    family = _family()
    patient = {"resourceType": "Patient", "name": [{"family": family}], **fields}
    answer = client.post("/Patient", json=patient, headers=HEADERS)
    assert answer.status_code == 422, answer.text
    assert _outcome(answer) == {"resourceType": "OperationOutcome", "issue": [issue]}
    assert _count(client, family) == 0
    checked = client.post("/Patient/$validate", json=patient, headers=HEADERS)
    assert checked.status_code == 200, checked.text
    assert checked.json()["issue"] == [issue]
    assert _count(client, family) == 0


def test_an_update_breaking_an_invariant_keeps_the_stored_version(
        client: httpx.Client) -> None:
    family = _family()
    created = client.post("/Patient", json={"resourceType": "Patient",
                                            "name": [{"family": family}]}, headers=HEADERS)
    assert created.status_code == 201, created.text
    stored = created.json()
    bad = {**stored, "contact": [{"gender": "male"}]}
    answer = client.put(f"/Patient/{stored['id']}", json=bad, headers=HEADERS)
    assert answer.status_code == 422, answer.text
    assert [i["code"] for i in answer.json()["issue"]] == ["invariant"]
    again = client.get(f"/Patient/{stored['id']}").json()
    assert again["meta"]["versionId"] == stored["meta"]["versionId"]
    assert "contact" not in again


def test_the_same_resource_once_right_is_created(client: httpx.Client) -> None:
    family = _family()
    patient = {"resourceType": "Patient", "name": [{"family": family}],
               "contact": [{"name": {"family": "Next-of-kin"}}],
               "text": {"status": "generated",
                        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Hi</p></div>'}}
    answer = client.post("/Patient", json=patient, headers=HEADERS)
    assert answer.status_code == 201, answer.text
    assert _count(client, family) == 1
