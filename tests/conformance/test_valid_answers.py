"""Every kind of answer the server gives is itself a valid R4 resource."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from fhir_server.validation.validator import Validator

HEADERS = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator.load(strict=True)


def _answers(client: httpx.Client) -> dict[str, Any]:
    tag = f"v{uuid.uuid4().hex[:10]}"
    meta = {"tag": [{"system": "urn:valid", "code": tag}]}
    patient = {"resourceType": "Patient", "id": f"{tag}-p", "meta": meta,
               "name": [{"family": "Valid"}]}
    obs = {"resourceType": "Observation", "id": f"{tag}-o", "meta": meta, "status": "final",
           "code": {"text": "x"}, "subject": {"reference": f"Patient/{tag}-p"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "PUT", "url": f"Patient/{tag}-p"}, "resource": patient},
        {"request": {"method": "PUT", "url": f"Observation/{tag}-o"}, "resource": obs},
        {"request": {"method": "GET", "url": f"Observation?_tag=urn:valid|{tag}"}}]}
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Patient/{tag}-p"}},
        {"request": {"method": "GET", "url": f"Patient/{tag}-missing"}},
        {"request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "gender": "robot"}},
        {"request": {"method": "DELETE", "url": f"Observation/{tag}-o"}}]}
    answers = {
        "transaction-response": client.post("", content=orjson.dumps(bundle),
                                            headers=HEADERS),
        "batch-response": client.post("", content=orjson.dumps(batch), headers=HEADERS),
        "batch-response, Prefer OperationOutcome": client.post(
            "", content=orjson.dumps(batch),
            headers={**HEADERS, "Prefer": "return=OperationOutcome"}),
        "searchset with includes and an outcome": client.get("/Observation", params={
            "_tag": f"urn:valid|{tag}", "_include": "Observation:subject",
            "_revinclude": "Provenance:target", "nonsense": "1", "_total": "accurate"}),
        "searchset, _summary=count": client.get("/Patient", params={"_summary": "count"}),
        "searchset, _elements": client.get("/Patient", params={
            "_tag": f"urn:valid|{tag}", "_elements": "name"}),
        "history": client.get(f"/Observation/{tag}-o/_history"),
        "type history": client.get("/Observation/_history", params={"_count": "2"}),
        "read": client.get(f"/Patient/{tag}-p"),
        "_summary=true": client.get(f"/Patient/{tag}-p", params={"_summary": "true"}),
        "404": client.get(f"/Patient/{tag}-nobody"),
        "410": client.get(f"/Observation/{tag}-o"),
        "422": client.post("/Patient", content=b'{"resourceType":"Patient","gender":"x"}',
                           headers=HEADERS),
        "400 bad search value": client.get("/Patient", params={"birthdate": "2020-13-45"}),
        "Prefer OperationOutcome": client.post(
            "/Patient", content=b'{"resourceType":"Patient"}',
            headers={**HEADERS, "Prefer": "return=OperationOutcome"}),
        "metadata": client.get("/metadata"),
    }
    return {name: response.json() for name, response in answers.items()}


def test_every_answer_is_a_valid_resource(client: httpx.Client,
                                          validator: Validator) -> None:
    failures = {}
    for name, body in _answers(client).items():
        try:
            validator.validate(body)
        except Exception as exc:  # collect them all, to see every problem at once
            failures[name] = str(exc)
    assert failures == {}
