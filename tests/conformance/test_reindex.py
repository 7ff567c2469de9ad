"""API-defined SearchParameters become searchable after $reindex, a background job."""

from __future__ import annotations

import time
import uuid

import httpx
import orjson
import pytest

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
