"""PATCH over HTTP: JSON Patch, FHIRPath Patch, preconditions, conditional PATCH."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

pytestmark = pytest.mark.requires(interaction=("Patient", "patch"),
                                  patch_format="application/json-patch+json")

FHIR = {"Content-Type": "application/fhir+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture
def patient(client: httpx.Client) -> str:
    pid = f"pa{uuid.uuid4().hex[:10]}"
    body = {"resourceType": "Patient", "id": pid, "active": True,
            "identifier": [{"system": "urn:patch", "value": pid}]}
    assert client.put(f"/Patient/{pid}", content=orjson.dumps(body),
                      headers=FHIR).status_code == 201
    return pid


def _patch(client: httpx.Client, url: str, body: Any, headers: dict[str, str],
           **extra: str) -> httpx.Response:
    return client.patch(url, content=orjson.dumps(body), headers={**headers, **extra})


def _version(client: httpx.Client, pid: str) -> str:
    return str(client.get(f"/Patient/{pid}").json()["meta"]["versionId"])


def test_json_patch(client: httpx.Client, patient: str) -> None:
    response = _patch(client, f"/Patient/{patient}",
                      [{"op": "add", "path": "/gender", "value": "female"},
                       {"op": "remove", "path": "/active"}], JSON_PATCH, **{"If-Match": 'W/"1"'})
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'
    body = response.json()
    assert body["gender"] == "female" and "active" not in body
    assert body["meta"]["versionId"] == "2"
    assert client.get(f"/Patient/{patient}").json()["gender"] == "female"


def test_fhirpath_patch(client: httpx.Client, patient: str) -> None:
    parameters = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Patient.active"},
        {"name": "value", "valueBoolean": False}]}]}
    response = _patch(client, f"/Patient/{patient}", parameters, FHIR)
    assert response.status_code == 200
    assert response.json()["active"] is False


@pytest.mark.parametrize(("patch", "status", "words"), [
    ([{"op": "test", "path": "/active", "value": False}], 422, "test '/active'"),
    ([{"op": "replace", "path": "/id", "value": "x"}], 422, "may not change the resource's id"),
    ([{"op": "add", "path": "/gender", "value": "robot"}], 422, "not a valid code"),
    ({"op": "add"}, 400, "must be a JSON array"),
])
def test_refused_patches_store_nothing(client: httpx.Client, patient: str, patch: Any,
                                       status: int, words: str) -> None:
    response = _patch(client, f"/Patient/{patient}", patch, JSON_PATCH)
    assert response.status_code == status
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert words in body["issue"][0]["diagnostics"]
    assert _version(client, patient) == "1"


def test_preconditions_and_media_types(client: httpx.Client, patient: str) -> None:
    add = [{"op": "add", "path": "/gender", "value": "male"}]
    stale = _patch(client, f"/Patient/{patient}", add, JSON_PATCH, **{"If-Match": 'W/"7"'})
    assert stale.status_code == 412
    assert _patch(client, "/Patient/nobody-here", add, JSON_PATCH).status_code == 404
    text = _patch(client, f"/Patient/{patient}", add, {"Content-Type": "text/plain"})
    assert text.status_code == 415
    assert "application/json-patch+json" in text.json()["issue"][0]["diagnostics"]
    assert _version(client, patient) == "1"


def test_conditional_patch(client: httpx.Client, patient: str) -> None:
    add = [{"op": "add", "path": "/gender", "value": "other"}]
    one = _patch(client, f"/Patient?identifier=urn:patch|{patient}", add, JSON_PATCH)
    assert one.status_code == 200 and one.json()["id"] == patient
    none = _patch(client, f"/Patient?identifier=urn:patch|{patient}-none", add, JSON_PATCH)
    assert none.status_code == 404
    twin = {"resourceType": "Patient", "identifier": [{"system": "urn:patch", "value": patient}]}
    assert client.post("/Patient", content=orjson.dumps(twin), headers=FHIR).status_code == 201
    several = _patch(client, f"/Patient?identifier=urn:patch|{patient}", add, JSON_PATCH)
    assert several.status_code == 412
