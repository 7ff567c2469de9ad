"""References written with the server's own absolute base are local (search.html
3.1.1.4.12): found by reference search, chains, _has, compartments and includes, with
no FHIR_BASE_URL configured, and still after $reindex."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

HEADERS = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def tag(client: httpx.Client) -> str:
    return f"lb{uuid.uuid4().hex[:10]}"


def put(client: httpx.Client, resource: dict[str, Any]) -> None:
    path = f"/{resource['resourceType']}/{resource['id']}"
    answer = client.put(path, content=orjson.dumps(resource), headers=HEADERS)
    assert answer.status_code == 201, answer.text


def ids(client: httpx.Client, path: str, **params: str) -> list[str]:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return sorted(e["resource"]["id"] for e in answer.json().get("entry", []))


@pytest.fixture(scope="module")
def world(client: httpx.Client, tag: str) -> str:
    own = str(client.base_url).rstrip("/")
    meta = {"tag": [{"system": "urn:lb", "code": tag}]}
    put(client, {"resourceType": "Patient", "id": f"{tag}-p", "meta": meta,
                 "name": [{"family": f"Base{tag}"}]})
    put(client, {"resourceType": "Observation", "id": f"{tag}-o", "meta": meta,
                 "status": "final", "code": {"text": "x"},
                 "subject": {"reference": f"{own}/Patient/{tag}-p"}})
    return tag


def test_own_base_is_local(client: httpx.Client, world: str) -> None:
    tag = world
    assert ids(client, "/Observation", subject=f"Patient/{tag}-p") == [f"{tag}-o"]
    assert ids(client, "/Observation", patient=f"{tag}-p") == [f"{tag}-o"]
    assert ids(client, "/Observation", **{"subject.family": f"Base{tag}"}) == [f"{tag}-o"]
    assert ids(client, "/Patient", **{"_has:Observation:subject:_tag": f"urn:lb|{tag}"}) == [
        f"{tag}-p"]
    assert ids(client, f"/Patient/{tag}-p/Observation") == [f"{tag}-o"]
    assert ids(client, "/Observation", _id=f"{tag}-o", _include="Observation:subject") == [
        f"{tag}-o", f"{tag}-p"]
    assert ids(client, "/Patient", _id=f"{tag}-p", _revinclude="Observation:subject") == [
        f"{tag}-o", f"{tag}-p"]


@pytest.mark.http_only  # $reindex answers 202 with Content-Location
def test_still_local_after_reindex(client: httpx.Client, world: str) -> None:
    tag = world
    started = client.post("/Observation/$reindex")
    assert started.status_code == 202
    status_url = started.headers["content-location"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        params = {p["name"]: p for p in client.get(status_url).json()["parameter"]}
        if params["status"]["valueCode"] == "done":
            break
        time.sleep(0.2)
    else:
        raise AssertionError("reindex did not finish")
    assert ids(client, "/Observation", subject=f"Patient/{tag}-p") == [f"{tag}-o"]
