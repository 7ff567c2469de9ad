"""batch and transaction Bundles over HTTP."""

from __future__ import annotations

import base64
import re
import uuid
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest

from tests.conformance.test_round_trip import BUNDLES

pytestmark = pytest.mark.requires(interaction=["transaction", "batch"])

HEADERS = {"Content-Type": "application/fhir+json"}


def post_bundle(client: httpx.Client, entries: list[dict[str, Any]], kind: str = "transaction",
                **headers: str) -> httpx.Response:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
    return client.post("", content=orjson.dumps(bundle), headers={**HEADERS, **headers})


def tagged_count(client: httpx.Client, rtype: str, tag: str) -> int:
    response = client.get(f"/{rtype}", params={"_tag": f"urn:b|{tag}", "_summary": "count"})
    return int(response.json()["total"])


@pytest.fixture
def tag() -> str:
    return f"b{uuid.uuid4().hex[:10]}"


def meta(tag: str) -> dict[str, Any]:
    return {"tag": [{"system": "urn:b", "code": tag}]}


def test_transaction_resolves_urn_uuid_everywhere(client: httpx.Client, tag: str) -> None:
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    encounter_url = f"urn:uuid:{uuid.uuid4()}"
    entries = [
        {"fullUrl": encounter_url, "request": {"method": "POST", "url": "Encounter"},
         "resource": {"resourceType": "Encounter", "meta": meta(tag), "status": "finished",
                      "class": {"code": "AMB"}, "subject": {"reference": patient_url},
                      "reasonReference": [{"reference": "#c1"}],  # dom-3: contained is used
                      "extension": [{"url": "urn:ext", "valueReference": {
                          "reference": patient_url}}],
                      "contained": [{"resourceType": "Observation", "id": "c1",
                                     "status": "final", "code": {"text": "x"},
                                     "subject": {"reference": patient_url}}]}},
        {"fullUrl": patient_url, "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "meta": meta(tag), "gender": "male",
                      "birthDate": "2000-01-01"}},
        {"request": {"method": "GET", "url": f"Patient?_tag=urn:b|{tag}"}},
    ]
    response = post_bundle(client, entries)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created", "201 Created", "200 OK"]
    patient_location = body["entry"][1]["response"]["location"]
    patient_ref = patient_location.rsplit("/_history", 1)[0]
    assert body["entry"][1]["response"]["etag"] == 'W/"1"'
    encounter = body["entry"][0]["resource"]
    assert encounter["subject"]["reference"] == patient_ref
    assert encounter["extension"][0]["valueReference"]["reference"] == patient_ref
    assert encounter["contained"][0]["subject"]["reference"] == patient_ref
    searched = body["entry"][2]["resource"]
    assert searched["type"] == "searchset"
    assert len(searched["entry"]) == 1
    found = client.get("/Encounter", params={"subject": patient_ref}).json()
    assert len(found["entry"]) == 1


def test_processing_order(client: httpx.Client, tag: str) -> None:
    pid = f"{tag}-old"
    assert client.put(f"/Patient/{pid}", content=orjson.dumps(
        {"resourceType": "Patient", "id": pid, "meta": meta(tag)}), headers=HEADERS
    ).status_code == 201
    entries = [
        {"request": {"method": "GET", "url": f"Patient?_tag=urn:b|{tag}&_total=accurate"}},
        {"request": {"method": "PUT", "url": f"Patient/{tag}-new"},
         "resource": {"resourceType": "Patient", "id": f"{tag}-new", "meta": meta(tag)}},
        {"request": {"method": "DELETE", "url": f"Patient/{pid}"}},
    ]
    body = post_bundle(client, entries).json()
    assert [e["response"]["status"] for e in body["entry"]] == [
        "200 OK", "201 Created", "204 No Content"]
    # GET runs last: it sees the new Patient and not the deleted one.
    searched = body["entry"][0]["resource"]
    assert [e["resource"]["id"] for e in searched["entry"]] == [f"{tag}-new"]


def test_failing_entry_rolls_back_everything(client: httpx.Client, tag: str) -> None:
    entries = [
        {"fullUrl": "urn:uuid:aaaaaaaa-0000-0000-0000-000000000001",
         "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "meta": meta(tag)}},
        {"request": {"method": "PUT", "url": f"Patient/{tag}-x"},
         "resource": {"resourceType": "Patient", "id": f"{tag}-x", "meta": meta(tag)}},
        {"request": {"method": "POST", "url": "Observation"},
         "resource": {"resourceType": "Observation", "meta": meta(tag), "status": "bogus",
                      "code": {"text": "x"}}},
    ]
    response = post_bundle(client, entries)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "entry[2]" in outcome["issue"][0]["diagnostics"]
    assert tagged_count(client, "Patient", tag) == 0
    assert client.get(f"/Patient/{tag}-x").status_code == 404


def test_if_none_exist_and_conditional_references(client: httpx.Client, tag: str) -> None:
    org_ident = f"urn:org|{tag}"
    org = {"resourceType": "Organization", "meta": meta(tag), "name": "Hospital",
           "identifier": [{"system": "urn:org", "value": tag}]}
    first = post_bundle(client, [
        {"fullUrl": "urn:uuid:00000000-0000-0000-0000-00000000000a",
         "request": {"method": "POST", "url": "Organization",
                     "ifNoneExist": f"identifier={org_ident}"}, "resource": org},
        {"fullUrl": "urn:uuid:00000000-0000-0000-0000-00000000000b",
         "request": {"method": "POST", "url": "Organization",
                     "ifNoneExist": f"identifier={org_ident}"}, "resource": org},
    ])
    assert first.status_code == 200, first.text
    statuses = [e["response"]["status"] for e in first.json()["entry"]]
    assert statuses == ["201 Created", "200 OK"]
    assert tagged_count(client, "Organization", tag) == 1
    org_id = first.json()["entry"][0]["response"]["location"].split("/")[1]
    again = post_bundle(client, [
        {"fullUrl": "urn:uuid:00000000-0000-0000-0000-00000000000c",
         "request": {"method": "POST", "url": "Organization",
                     "ifNoneExist": f"identifier={org_ident}"}, "resource": org},
        {"request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "meta": meta(tag),
                      "managingOrganization": {
                          "reference": "urn:uuid:00000000-0000-0000-0000-00000000000c"},
                      "generalPractitioner": [
                          {"reference": f"Organization?identifier={org_ident}"}]}},
    ])
    assert again.status_code == 200, again.text
    assert again.json()["entry"][0]["response"]["status"] == "200 OK"
    patient = again.json()["entry"][1]["resource"]
    assert patient["managingOrganization"]["reference"] == f"Organization/{org_id}"
    assert patient["generalPractitioner"][0]["reference"] == f"Organization/{org_id}"
    unresolved = post_bundle(client, [
        {"request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "meta": meta(tag), "managingOrganization": {
             "reference": "Organization?identifier=urn:org|nobody"}}}])
    assert unresolved.status_code == 412
    assert "entry[0]" in unresolved.json()["issue"][0]["diagnostics"]


def test_two_writes_to_one_resource_fail(client: httpx.Client, tag: str) -> None:
    resource = {"resourceType": "Patient", "id": f"{tag}-dup", "meta": meta(tag)}
    response = post_bundle(client, [
        {"request": {"method": "PUT", "url": f"Patient/{tag}-dup"}, "resource": resource},
        {"request": {"method": "PUT", "url": f"Patient/{tag}-dup"}, "resource": resource},
    ])
    assert response.status_code == 400
    assert client.get(f"/Patient/{tag}-dup").status_code == 404


def test_if_match_in_entries(client: httpx.Client, tag: str) -> None:
    pid = f"{tag}-m"
    client.put(f"/Patient/{pid}", content=orjson.dumps(
        {"resourceType": "Patient", "id": pid}), headers=HEADERS)
    stale = post_bundle(client, [
        {"request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"5"'},
         "resource": {"resourceType": "Patient", "id": pid, "active": True}}])
    assert stale.status_code == 412
    fresh = post_bundle(client, [
        {"request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"1"'},
         "resource": {"resourceType": "Patient", "id": pid, "active": True}},
        {"request": {"method": "GET", "url": f"Patient/{pid}", "ifNoneMatch": 'W/"2"'}}])
    assert fresh.status_code == 200
    assert [e["response"]["status"] for e in fresh.json()["entry"]] == [
        "200 OK", "304 Not Modified"]


def test_batch_answers_each_entry(client: httpx.Client, tag: str) -> None:
    response = post_bundle(client, [
        {"request": {"method": "PUT", "url": f"Patient/{tag}-ok"},
         "resource": {"resourceType": "Patient", "id": f"{tag}-ok"}},
        {"request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "gender": "robot"}},
        {"request": {"method": "GET", "url": f"Patient/{tag}-missing"}},
        {"request": {"method": "GET", "url": f"Patient/{tag}-ok"}},
    ], kind="batch", Prefer="return=minimal")
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses[0] == "201 Created" and statuses[3] == "200 OK"
    assert statuses[1] == "422 Unprocessable Entity" and statuses[2] == "404 Not Found"
    assert body["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert "resource" not in body["entry"][0]


def test_prefer_operation_outcome_and_minimal(client: httpx.Client, tag: str) -> None:
    entry = {"request": {"method": "POST", "url": "Patient"},
             "resource": {"resourceType": "Patient", "meta": meta(tag)}}
    minimal = post_bundle(client, [entry], Prefer="return=minimal").json()
    assert "resource" not in minimal["entry"][0]
    assert minimal["entry"][0]["response"]["location"].startswith("Patient/")
    full = post_bundle(client, [entry]).json()
    assert full["entry"][0]["resource"]["resourceType"] == "Patient"


def test_patch_entry(client: httpx.Client, tag: str) -> None:
    pid = f"{tag}-p"
    client.put(f"/Patient/{pid}", content=orjson.dumps(
        {"resourceType": "Patient", "id": pid, "gender": "male"}), headers=HEADERS)
    patch = [{"op": "replace", "path": "/gender", "value": "female"}]
    binary = {"resourceType": "Binary", "contentType": "application/json-patch+json",
              "data": base64.b64encode(orjson.dumps(patch)).decode()}
    response = post_bundle(client, [
        {"request": {"method": "PATCH", "url": f"Patient/{pid}"}, "resource": binary}])
    assert response.status_code == 200, response.text
    assert client.get(f"/Patient/{pid}").json()["gender"] == "female"


def test_malformed_bundles(client: httpx.Client) -> None:
    assert client.post("", content=b'{"resourceType":"Patient"}',
                       headers=HEADERS).status_code == 400
    assert client.post("", content=b'{"resourceType":"Bundle","type":"collection"}',
                       headers=HEADERS).status_code == 400
    no_request = {"resourceType": "Bundle", "type": "transaction",
                  "entry": [{"resource": {"resourceType": "Patient"}}]}
    assert client.post("", content=orjson.dumps(no_request), headers=HEADERS
                       ).status_code == 400


def test_us_core_bundles_load_through_the_api(client: httpx.Client) -> None:
    for path in BUNDLES:
        raw = path.read_bytes()
        bundle = orjson.loads(raw)
        response = client.post("", content=raw, headers={**HEADERS, "Prefer": "return=minimal"})
        assert response.status_code == 200, (path.name, response.text[:500])
        expected = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
        got = Counter(e["response"]["location"].split("/")[0]
                      for e in response.json()["entry"])
        assert got == expected


def test_if_none_exist_matching_several_is_412_naming_the_entry_once(
        client: httpx.Client, tag: str) -> None:
    for n in (1, 2):
        created = client.post("/Organization", content=orjson.dumps({
            "resourceType": "Organization", "meta": meta(tag), "name": f"Twin {n}",
            "identifier": [{"system": "urn:twin", "value": tag}]}), headers=HEADERS)
        assert created.status_code == 201
    entry = {"request": {"method": "POST", "url": "Organization",
                         "ifNoneExist": f"identifier=urn:twin|{tag}"},
             "resource": {"resourceType": "Organization", "meta": meta(tag),
                          "name": "Twin 3"}}  # org-1: a name or an identifier
    expected = (f"entry[0] (POST Organization): If-None-Exist 'identifier=urn:twin|{tag}' "
                "matches more than one Organization")
    batch = post_bundle(client, [entry], kind="batch")
    assert batch.status_code == 200
    response = batch.json()["entry"][0]["response"]
    assert response["status"] == "412 Precondition Failed"
    assert response["outcome"]["issue"][0]["diagnostics"] == expected
    transaction = post_bundle(client, [entry])
    assert transaction.status_code == 412
    assert transaction.json()["issue"][0]["diagnostics"] == expected
    assert tagged_count(client, "Organization", tag) == 2


def test_get_entries_carry_their_answer_whatever_prefer_says(client: httpx.Client,
                                                             tag: str) -> None:
    base = str(client.base_url).rstrip("/")
    put = {"request": {"method": "PUT", "url": f"Patient/{tag}-g"},
           "resource": {"resourceType": "Patient", "id": f"{tag}-g", "meta": meta(tag)}}
    assert post_bundle(client, [put]).status_code == 200
    gets = [
        {"request": {"method": "GET", "url": f"Patient/{tag}-g"}},
        {"request": {"method": "GET", "url": f"Patient?_tag=urn:b|{tag}"}},
        {"request": {"method": "HEAD", "url": f"Patient/{tag}-g"}},
        {"request": {"method": "GET", "url": f"Patient/{tag}-g", "ifNoneMatch": 'W/"1"'}},
    ]
    for prefer in ("minimal", "OperationOutcome", "representation"):
        response = post_bundle(client, [put, *gets], kind="batch", Prefer=f"return={prefer}")
        assert response.status_code == 200
        wrote, read, search, head, not_modified = response.json()["entry"]
        assert [e["response"]["status"] for e in (read, search, head, not_modified)] == [
            "200 OK", "200 OK", "200 OK", "304 Not Modified"]
        assert read["fullUrl"] == f"{base}/Patient/{tag}-g"
        assert read["resource"]["id"] == f"{tag}-g"
        assert search["resource"]["type"] == "searchset"
        assert [e["resource"]["id"] for e in search["resource"]["entry"]] == [f"{tag}-g"]
        assert "resource" not in head and "resource" not in not_modified
        if prefer == "representation":
            assert wrote["fullUrl"] == f"{base}/Patient/{tag}-g"
            assert wrote["resource"]["id"] == f"{tag}-g"
        else:
            assert "resource" not in wrote and "fullUrl" not in wrote
        if prefer == "OperationOutcome":
            issue = wrote["response"]["outcome"]["issue"][0]
            assert (issue["severity"], issue["code"]) == ("information", "informational")
            assert re.fullmatch(rf"Patient/{tag}-g (created|updated|unchanged); version \d+ at "
                                r"\d{4}-\d\d-\d\dT[\d:.]+Z", issue["diagnostics"])
        else:
            assert "outcome" not in wrote["response"]
