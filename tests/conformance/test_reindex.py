"""API-defined SearchParameters become searchable after $reindex, a background job."""

from __future__ import annotations

import time
import uuid

import httpx
import orjson
import pytest

pytestmark = pytest.mark.requires(operation="reindex")

HEADERS = {"Content-Type": "application/fhir+json"}
MAIDEN = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"


def _wait(predicate: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


@pytest.mark.http_only  # its 202 names the job in Content-Location
def test_custom_parameter_is_served_after_reindex(client: httpx.Client) -> None:
    tag = f"rx{uuid.uuid4().hex[:8]}"
    code = f"maiden-{tag}"
    for n, maiden in enumerate(["Ostrova", "Kim"]):
        body = {"resourceType": "Patient", "id": f"{tag}-{n}",
                "meta": {"tag": [{"system": "urn:rx", "code": tag}]},
                "extension": [{"url": MAIDEN, "valueString": maiden}]}
        assert client.put(f"/Patient/{tag}-{n}", content=orjson.dumps(body),
                          headers=HEADERS).status_code == 201
    parameter = {
        "resourceType": "SearchParameter", "url": f"http://example.org/sp/{code}",
        "name": "MothersMaidenName", "status": "active", "description": "maiden name",
        "code": code, "base": ["Patient"], "type": "string",
        "expression": f"Patient.extension.where(url='{MAIDEN}').value",
    }
    created = client.post("/SearchParameter", content=orjson.dumps(parameter), headers=HEADERS)
    assert created.status_code == 201

    def building_warning() -> bool:
        bundle = client.get("/Patient", params={"_tag": f"urn:rx|{tag}", code: "ost"}).json()
        notes = [i["diagnostics"] for e in bundle.get("entry", [])
                 if e["search"]["mode"] == "outcome" for i in e["resource"]["issue"]]
        return any("still being built" in n for n in notes)

    _wait(building_warning)
    strict = client.get("/Patient", params={code: "ost"}, headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400

    started = client.post("/Patient/$reindex")
    assert started.status_code == 202
    status_url = started.headers["content-location"]
    assert "/_jobs/" in status_url

    def done() -> bool:
        params = {p["name"]: p for p in client.get(status_url).json()["parameter"]}
        return params["status"]["valueCode"] == "done"

    _wait(done)
    params = {p["name"]: p for p in client.get(status_url).json()["parameter"]}
    assert params["processed"]["valueInteger"] >= 2

    def served() -> bool:
        found = client.get("/Patient", params={"_tag": f"urn:rx|{tag}", code: "ost"}).json()
        return [e["resource"]["id"] for e in found.get("entry", [])
                if e["search"]["mode"] == "match"] == [f"{tag}-0"]

    _wait(served)
    metadata = client.get("/metadata").json()
    assert client.get("/_jobs/999999999").status_code == 404
    assert metadata["resourceType"] == "CapabilityStatement"


# -- what a SearchParameter's expression may cost (FHIRPATH_MAX_BYTES/NODES: 4096, 256) --


@pytest.mark.parametrize(("expression", "diagnostics"), [
    (" | ".join(["Patient.name.given"] * 300), "bytes long; at most 4096 are allowed"),
    (" | ".join(["Patient.name"] * 100), "has 399 nodes once parsed; at most 256"),
    ("Patient.descendants().ofType(HumanName)", "uses descendants(), which is not allowed"),
    ("Patient.name.where(given.matches('(a+)+$'))", "uses matches(), which is not allowed"),
])
def test_a_costly_expression_is_422_and_not_stored(client: httpx.Client, expression: str,
                                                   diagnostics: str) -> None:
    url = f"http://example.org/sp/costly-{uuid.uuid4().hex[:8]}"
    parameter = {"resourceType": "SearchParameter", "url": url, "name": "Costly",
                 "status": "active", "description": "too costly", "code": "costly",
                 "base": ["Patient"], "type": "string", "expression": expression}
    answer = client.post("/SearchParameter", content=orjson.dumps(parameter),
                         headers=HEADERS)
    assert answer.status_code == 422, answer.text
    issue = answer.json()["issue"][0]
    assert (issue["code"], issue["expression"]) == ("too-costly",
                                                    ["SearchParameter.expression"])
    assert diagnostics in issue["diagnostics"]
    found = client.get("/SearchParameter", params={"url": url}).json()
    assert found.get("entry", []) == []


def test_an_expression_that_is_no_fhirpath_is_422_invalid(client: httpx.Client) -> None:
    parameter = {"resourceType": "SearchParameter", "id": "broken",
                 "url": "http://example.org/sp/broken",
                 "name": "Broken", "status": "active", "description": "d", "code": "broken",
                 "base": ["Patient"], "type": "string", "expression": "Patient.name )"}
    answer = client.put("/SearchParameter/broken", content=orjson.dumps(parameter),
                        headers=HEADERS)
    assert answer.status_code == 422, answer.text
    assert answer.json()["issue"][0]["code"] == "invalid"
    assert client.get("/SearchParameter/broken").status_code == 404


# -- one active job per scope; cancellation ----------------------------------------------


def _status(client: httpx.Client, url: str) -> str:
    params = {p["name"]: p for p in client.get(url).json()["parameter"]}
    return str(params["status"]["valueCode"])


@pytest.mark.http_only  # job URLs come in Content-Location
def test_one_reindex_per_scope_and_cancel(client: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "PUT", "url": f"Basic/{tag}-{n}"},
         "resource": {"resourceType": "Basic", "id": f"{tag}-{n}",
                      "code": {"text": f"basic {n}"}}} for n in range(1000)]}
    assert client.post("", content=orjson.dumps(bundle), headers=HEADERS).status_code == 200

    first = client.post("/Basic/$reindex")
    second = client.post("/Basic/$reindex")
    assert (first.status_code, second.status_code) == (202, 202)
    job_url = first.headers["content-location"]
    assert second.headers["content-location"] == job_url
    assert second.json()["parameter"][0] == {"name": "job",
                                             "valueString": job_url.rsplit("/", 1)[1]}

    cancelled = client.delete(job_url)
    assert cancelled.status_code == 202, cancelled.text
    assert {p["name"]: p for p in cancelled.json()["parameter"]}["status"] == {
        "name": "status", "valueCode": "cancelled"}
    assert _status(client, job_url) == "cancelled"
    assert client.delete(job_url).status_code == 202  # cancelling again changes nothing
    time.sleep(1.5)  # the worker's next poll and batch
    assert _status(client, job_url) == "cancelled"

    again = client.post("/Basic/$reindex")
    assert again.status_code == 202
    new_url = again.headers["content-location"]
    assert new_url != job_url
    _wait(lambda: _status(client, new_url) == "done")
    ended = client.delete(new_url)
    assert ended.status_code == 409
    assert ended.json()["issue"][0]["code"] == "conflict"
    assert _status(client, new_url) == "done"

    base = job_url.rsplit("/", 1)[0]
    for unknown in ("999999999", "abc"):
        missing = client.delete(f"{base}/{unknown}")
        assert missing.status_code == 404
        assert missing.json()["issue"][0]["code"] == "not-found"
