"""Limits of one resource and of one Bundle, on the wire: 413 with an OperationOutcome,
and nothing refused is stored (docs/operations.md#limits)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import running_server

pytestmark = pytest.mark.http_only

HEADERS = {"Content-Type": "application/fhir+json"}
MAX_RESOURCE = 20_000
MAX_ENTRIES = 50
MAX_SEARCHES = 3
MAX_RESPONSE = 30_000


@pytest.fixture(scope="module")
def limited(database_url: str) -> Iterator[httpx.Client]:
    """A client of a server with small limits."""
    with running_server(database_url, MAX_RESOURCE_BYTES=str(MAX_RESOURCE),
                        MAX_BUNDLE_ENTRIES=str(MAX_ENTRIES),
                        MAX_BUNDLE_SEARCHES=str(MAX_SEARCHES),
                        MAX_RESPONSE_BYTES=str(MAX_RESPONSE)) as base, \
            httpx.Client(base_url=f"{base}/fhir", timeout=60) as client:
        yield client


@pytest.fixture
def tag() -> str:
    return f"l{uuid.uuid4().hex[:10]}"


def patient(tag: str, text_bytes: int = 0) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient",
                                "meta": {"tag": [{"system": "urn:l", "code": tag}]}}
    if text_bytes:
        resource["text"] = {"status": "generated",
                            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">'
                                   f'{"x" * text_bytes}</div>'}
    return resource


def stored(client: httpx.Client, tag: str) -> int:
    answer = client.get("/Patient", params={"_tag": f"urn:l|{tag}", "_summary": "count"})
    return int(answer.json()["total"])


def post_bundle(client: httpx.Client, kind: str, entries: list[dict[str, Any]],
                **headers: str) -> httpx.Response:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
    return client.post("", content=orjson.dumps(bundle), headers={**HEADERS, **headers})


def create_entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"request": {"method": "POST", "url": "Patient"}, "resource": resource}


def issue_code(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return response.status_code, body["issue"][0]["code"]


def test_a_resource_past_the_limit_is_not_stored(limited: httpx.Client, tag: str) -> None:
    big = orjson.dumps(patient(tag, MAX_RESOURCE))
    assert issue_code(limited.post("/Patient", content=big, headers=HEADERS)) == \
        (413, "too-long")
    assert issue_code(limited.put("/Patient/too-big", content=big.replace(
        b'"Patient"', b'"Patient","id":"too-big"', 1), headers=HEADERS)) == (413, "too-long")
    assert stored(limited, tag) == 0
    small = limited.post("/Patient", content=orjson.dumps(patient(tag, 100)),
                         headers=HEADERS)
    assert small.status_code == 201


def test_an_update_past_the_limit_leaves_the_resource(limited: httpx.Client,
                                                      tag: str) -> None:
    created = limited.post("/Patient", content=orjson.dumps(patient(tag)), headers=HEADERS)
    pid = created.headers["location"].split("/")[-3]
    big = {**patient(tag, MAX_RESOURCE), "id": pid}
    answer = limited.put(f"/Patient/{pid}", content=orjson.dumps(big), headers=HEADERS)
    assert issue_code(answer) == (413, "too-long")
    assert limited.get(f"/Patient/{pid}").headers["etag"] == 'W/"1"'


def test_the_doubling_json_patch_is_refused(limited: httpx.Client, tag: str) -> None:
    resource = {**patient(tag), "name": [{"family": "Smith", "given": ["A"]}]}
    created = limited.post("/Patient", content=orjson.dumps(resource), headers=HEADERS)
    pid = created.headers["location"].split("/")[-3]
    vector = orjson.dumps([{"op": "copy", "from": "/name", "path": "/name/-"}] * 21)
    answer = limited.patch(f"/Patient/{pid}", content=vector,
                           headers={"Content-Type": "application/json-patch+json"})
    # the bound passes 20 kB before the copies pass the 64 kB any patch may copy
    assert issue_code(answer) == (413, "too-long")
    grow = orjson.dumps([{"op": "add", "path": "/text", "value": patient(
        tag, MAX_RESOURCE)["text"]}])
    answer = limited.patch(f"/Patient/{pid}", content=grow,
                           headers={"Content-Type": "application/json-patch+json"})
    assert issue_code(answer) == (413, "too-long")
    current = limited.get(f"/Patient/{pid}")
    assert current.headers["etag"] == 'W/"1"'
    assert current.json()["name"] == resource["name"]


def test_a_transaction_with_a_resource_past_the_limit_stores_nothing(
        limited: httpx.Client, tag: str) -> None:
    entries = [create_entry(patient(tag)), create_entry(patient(tag, MAX_RESOURCE))]
    answer = post_bundle(limited, "transaction", entries)
    assert issue_code(answer) == (413, "too-long")
    assert "entry[1]" in answer.json()["issue"][0]["diagnostics"]
    assert stored(limited, tag) == 0


def test_a_patch_entry_past_the_limit(limited: httpx.Client, tag: str) -> None:
    created = limited.post("/Patient", content=orjson.dumps(patient(tag)), headers=HEADERS)
    pid = created.headers["location"].split("/")[-3]
    vector = orjson.dumps([{"op": "copy", "from": "/meta", "path": "/meta/tag/-"}] * 21)
    binary = {"resourceType": "Binary", "contentType": "application/json-patch+json",
              "data": base64.b64encode(vector).decode()}
    entries = [create_entry(patient(tag)),
               {"request": {"method": "PATCH", "url": f"Patient/{pid}"}, "resource": binary}]
    answer = post_bundle(limited, "transaction", entries)
    assert issue_code(answer) == (413, "too-long")
    assert "entry[1]" in answer.json()["issue"][0]["diagnostics"]
    assert stored(limited, tag) == 1  # the one created before, not the entry's
    assert limited.get(f"/Patient/{pid}").headers["etag"] == 'W/"1"'


def test_a_batch_answers_the_entry_past_the_limit_alone(limited: httpx.Client,
                                                        tag: str) -> None:
    entries = [create_entry(patient(tag)), create_entry(patient(tag, MAX_RESOURCE)),
               create_entry(patient(tag))]
    answer = post_bundle(limited, "batch", entries)
    assert answer.status_code == 200
    statuses = [e["response"]["status"] for e in answer.json()["entry"]]
    assert statuses == ["201 Created", "413 Request Entity Too Large", "201 Created"]
    outcome = answer.json()["entry"][1]["response"]["outcome"]
    assert outcome["issue"][0]["code"] == "too-long"
    assert stored(limited, tag) == 2


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_too_many_entries(limited: httpx.Client, tag: str, kind: str) -> None:
    entries = [create_entry(patient(tag)) for _ in range(MAX_ENTRIES + 1)]
    answer = post_bundle(limited, kind, entries)
    assert issue_code(answer) == (413, "too-long")
    assert f"{MAX_ENTRIES + 1} entries" in answer.json()["issue"][0]["diagnostics"]
    assert stored(limited, tag) == 0
    assert post_bundle(limited, kind, entries[:MAX_ENTRIES]).status_code == 200
    assert stored(limited, tag) == MAX_ENTRIES


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_too_many_searches_run_nothing(limited: httpx.Client, tag: str, kind: str) -> None:
    searches = [{"request": {"method": "GET", "url": f"Patient?_tag=urn:l|{tag}"}},
                {"request": {"method": "GET", "url": "Patient/_history"}},
                {"request": {"method": "GET", "url": "_history"}},
                {"request": {"method": "GET", "url": f"Patient?name={tag}"}}]
    answer = post_bundle(limited, kind, [create_entry(patient(tag)), *searches])
    assert issue_code(answer) == (413, "too-costly")
    assert "4 searches" in answer.json()["issue"][0]["diagnostics"]
    assert stored(limited, tag) == 0
    reads = [{"request": {"method": "GET", "url": "Patient/none-such"}}] * 5
    answer = post_bundle(limited, kind if kind == "batch" else "batch",
                         [create_entry(patient(tag)), *searches[:MAX_SEARCHES], *reads])
    assert answer.status_code == 200
    assert stored(limited, tag) == 1


def test_a_batch_s_answers_stop_at_the_response_limit(limited: httpx.Client,
                                                      tag: str) -> None:
    created = limited.post("/Patient", content=orjson.dumps(patient(tag, 8_000)),
                           headers=HEADERS)
    pid = created.headers["location"].split("/")[-3]
    reads = [{"request": {"method": "GET", "url": f"Patient/{pid}"}} for _ in range(6)]
    answer = post_bundle(limited, "batch", [*reads, create_entry(patient(tag))])
    assert answer.status_code == 200
    entries = answer.json()["entry"]
    statuses = [e["response"]["status"] for e in entries]
    # 8 kB each: the fourth answer passes 30 kB, the rest are not run
    assert statuses == ["200 OK"] * 4 + ["413 Request Entity Too Large"] * 3
    outcome = entries[-1]["response"]["outcome"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "too-costly"
    assert "resource" not in entries[-1]
    assert stored(limited, tag) == 1  # the create at the end was not run
    assert len(answer.content) < MAX_RESPONSE + 12_000


def test_a_transaction_whose_answers_pass_the_limit_stores_nothing(
        limited: httpx.Client, tag: str) -> None:
    entries = [create_entry(patient(tag, 8_000)) for _ in range(5)]
    answer = post_bundle(limited, "transaction", entries, Prefer="return=representation")
    assert issue_code(answer) == (413, "too-costly")
    assert "nothing was stored" in answer.json()["issue"][0]["diagnostics"]
    assert stored(limited, tag) == 0
    answer = post_bundle(limited, "transaction", entries, Prefer="return=minimal")
    assert answer.status_code == 200
    assert stored(limited, tag) == 5
