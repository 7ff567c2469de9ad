"""create, read, vread, update, delete over HTTP: exact statuses, headers and bodies."""

from __future__ import annotations

import re
import uuid
from email.utils import parsedate_to_datetime

import httpx
import orjson
import pytest

pytestmark = pytest.mark.requires(interaction=[
    ("Patient", c) for c in ("create", "read", "vread", "update", "delete")])

FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def patient(**extra: object) -> dict[str, object]:
    body: dict[str, object] = {"resourceType": "Patient", "name": [{"family": "Chalmers"}]}
    body.update(extra)
    return body


def post(client: httpx.Client, resource: dict[str, object], **headers: str) -> httpx.Response:
    return client.post(f"/{resource['resourceType']}", content=orjson.dumps(resource),
                       headers={**HEADERS, **headers})


def put(client: httpx.Client, resource: dict[str, object], **headers: str) -> httpx.Response:
    return client.put(f"/{resource['resourceType']}/{resource['id']}",
                      content=orjson.dumps(resource), headers={**HEADERS, **headers})


def test_create_answers_201_with_location_etag_and_stored_body(client: httpx.Client) -> None:
    response = post(client, patient(id="ignored-by-create", gender="female"))
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/fhir+json; charset=utf-8"
    body = response.json()
    new_id = body["id"]
    assert new_id != "ignored-by-create"
    assert uuid.UUID(new_id)
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"] == (
        f"{client.base_url}Patient/{new_id}/_history/1")
    assert body["meta"]["versionId"] == "1"
    assert INSTANT.match(body["meta"]["lastUpdated"])
    modified = parsedate_to_datetime(response.headers["last-modified"])
    assert body["meta"]["lastUpdated"].startswith(modified.strftime("%Y-%m-%dT%H:%M:%S"))
    assert {k: v for k, v in body.items() if k not in ("id", "meta")} == {
        "resourceType": "Patient", "name": [{"family": "Chalmers"}], "gender": "female"}


def test_read_returns_current_version(client: httpx.Client) -> None:
    created = post(client, patient()).json()
    response = client.get(f"/Patient/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["etag"] == 'W/"1"'
    assert "last-modified" in response.headers


def test_update_increments_version_and_vread_keeps_old(client: httpx.Client) -> None:
    created = post(client, patient()).json()
    pid = created["id"]
    changed = patient(id=pid, active=True)
    response = put(client, changed)
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'
    assert response.headers["location"].endswith(f"/Patient/{pid}/_history/2")
    body = response.json()
    assert body["meta"]["versionId"] == "2"
    assert body["active"] is True
    assert body["meta"]["lastUpdated"] > created["meta"]["lastUpdated"]
    old = client.get(f"/Patient/{pid}/_history/1")
    assert old.status_code == 200
    assert old.json() == created
    assert old.headers["etag"] == 'W/"1"'
    assert client.get(f"/Patient/{pid}/_history/2").json() == body
    assert client.get(f"/Patient/{pid}/_history/3").status_code == 404
    assert client.get(f"/Patient/{pid}/_history/x").status_code == 404


def test_identical_update_creates_no_new_version(client: httpx.Client) -> None:
    created = post(client, patient()).json()
    again = put(client, {**created, "meta": {"versionId": "7"}})
    assert again.status_code == 200
    assert again.headers["etag"] == 'W/"1"'
    assert again.json() == created


def test_update_as_create_with_client_id(client: httpx.Client) -> None:
    pid = f"client-{uuid.uuid4().hex[:12]}"
    response = put(client, patient(id=pid))
    assert response.status_code == 201
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"].endswith(f"/Patient/{pid}/_history/1")
    assert client.get(f"/Patient/{pid}").json()["id"] == pid


def test_put_with_invalid_or_mismatched_id_is_400_and_not_stored(client: httpx.Client) -> None:
    bad = client.put("/Patient/has_underscore", content=orjson.dumps(
        patient(id="has_underscore")), headers=HEADERS)
    assert bad.status_code == 400
    assert bad.json()["resourceType"] == "OperationOutcome"
    assert client.get("/Patient/has_underscore").status_code == 404
    long_id = "a" * 65
    assert put(client, patient(id=long_id)).status_code == 400
    mismatch = client.put("/Patient/one-id", content=orjson.dumps(patient(id="other-id")),
                          headers=HEADERS)
    assert mismatch.status_code == 400
    assert client.get("/Patient/one-id").status_code == 404
    assert client.get("/Patient/other-id").status_code == 404
    missing = client.put("/Patient/no-id-in-body", content=orjson.dumps(patient()),
                         headers=HEADERS)
    assert missing.status_code == 400
    assert client.get("/Patient/no-id-in-body").status_code == 404


def test_wrong_resource_type_is_400(client: httpx.Client) -> None:
    response = client.post("/Patient", content=orjson.dumps({"resourceType": "Encounter"}),
                           headers=HEADERS)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["severity"] == "error"
    assert issue["code"] == "invalid"
    assert "Encounter" in issue["diagnostics"]


def test_if_match(client: httpx.Client) -> None:
    created = post(client, patient()).json()
    pid = created["id"]
    stale = put(client, patient(id=pid, active=False), **{"If-Match": 'W/"9"'})
    assert stale.status_code == 412
    assert stale.json()["issue"][0]["code"] == "conflict"
    assert client.get(f"/Patient/{pid}").headers["etag"] == 'W/"1"'
    fresh = put(client, patient(id=pid, active=False), **{"If-Match": 'W/"1"'})
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == 'W/"2"'
    malformed = put(client, patient(id=pid, active=True), **{"If-Match": "yesterday"})
    assert malformed.status_code == 400
    gone = client.delete(f"/Patient/{pid}", headers={"If-Match": 'W/"1"'})
    assert gone.status_code == 412
    assert client.get(f"/Patient/{pid}").status_code == 200


def test_conditional_read(client: httpx.Client) -> None:
    created = post(client, patient()).json()
    url = f"/Patient/{created['id']}"
    same = client.get(url, headers={"If-None-Match": 'W/"1"'})
    assert same.status_code == 304
    assert same.content == b""
    assert same.headers["etag"] == 'W/"1"'
    assert client.get(url, headers={"If-None-Match": 'W/"2"'}).status_code == 200
    modified = client.get(url).headers["last-modified"]
    assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(url, headers={
        "If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
    # RFC 9110: an If-Modified-Since that is not an HTTP date is ignored.
    assert client.get(url, headers={"If-Modified-Since": "yesterday"}).status_code == 200


def test_delete_then_read_is_410_and_history_keeps_it(client: httpx.Client) -> None:
    created = post(client, patient()).json()
    pid = created["id"]
    deleted = client.delete(f"/Patient/{pid}")
    assert deleted.status_code == 204
    assert deleted.headers["etag"] == 'W/"2"'
    assert deleted.content == b""
    gone = client.get(f"/Patient/{pid}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert client.get(f"/Patient/{pid}/_history/2").status_code == 410
    assert client.get(f"/Patient/{pid}/_history/1").status_code == 200
    again = client.delete(f"/Patient/{pid}")
    assert again.status_code == 204
    history = client.get(f"/Patient/{pid}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    revived = put(client, patient(id=pid))
    assert revived.status_code == 201
    assert revived.headers["etag"] == 'W/"3"'


def test_delete_unknown_is_204(client: httpx.Client) -> None:
    response = client.delete(f"/Patient/never-{uuid.uuid4().hex[:8]}")
    assert response.status_code == 204


def test_prefer_return(client: httpx.Client) -> None:
    minimal = post(client, patient(), Prefer="return=minimal")
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert minimal.headers["location"]
    oo = post(client, patient(), Prefer="return=OperationOutcome")
    assert oo.status_code == 201
    body = oo.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "information"
    full = post(client, patient(), Prefer="return=representation")
    assert full.json()["resourceType"] == "Patient"


def test_unknown_type_and_id_are_404(client: httpx.Client) -> None:
    unknown_type = client.get("/Patients/1")
    assert unknown_type.status_code == 404
    assert unknown_type.json()["issue"][0]["code"] == "not-found"
    assert client.get("/Patient/does-not-exist").status_code == 404
    assert client.post("/NotAType", content=b"{}", headers=HEADERS).status_code == 404


def test_method_not_allowed_is_405_operation_outcome(client: httpx.Client) -> None:
    response = client.post("/Patient/some-id", content=b"{}", headers=HEADERS)
    assert response.status_code == 405
    assert client.put("/Patient/x/_history/1", content=b"{}", headers=HEADERS
                      ).status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"


def test_decimal_precision_is_kept(client: httpx.Client) -> None:
    observation = (b'{"resourceType":"Observation","status":"final","code":{"text":"w"},'
                   b'"valueQuantity":{"value":72.50,"unit":"kg"}}')
    created = client.post("/Observation", content=observation, headers=HEADERS)
    assert created.status_code == 201
    read = client.get(f"/Observation/{created.json()['id']}")
    assert b'"value": 72.50' in read.content or b'"value":72.50' in read.content


def test_create_refuses_search_criteria_in_the_url(client: httpx.Client) -> None:
    ident = f"urn:getorcreate|{uuid.uuid4().hex}"
    response = client.post("/Patient", params={"identifier": ident},
                           content=orjson.dumps(patient()), headers=HEADERS)
    assert response.status_code == 400
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert ("create takes no search parameters in the URL (identifier); for a conditional "
            f"create send them in the If-None-Exist header (If-None-Exist: identifier={ident})"
            ) in diagnostics
    assert client.get("/Patient", params={"identifier": ident}).json().get("total", 0) == 0
    assert post(client, patient(), **{"If-None-Exist": f"identifier={ident}"}
                ).status_code == 201
    assert client.post("/Patient", params={"_pretty": "true"}, content=orjson.dumps(patient()),
                       headers=HEADERS).status_code == 201
