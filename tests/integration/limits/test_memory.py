"""The amplification vectors of issue 11 against a real server: each is refused (or
answered in bounded pages) while the worker's peak resident memory stays under
512 MB. The data is 300 Patients of 200 KB (60 MB: past MAX_RESPONSE_BYTES' 8 MiB)."""

from __future__ import annotations

import base64
import concurrent.futures
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.conftest import scratch_database
from tests.integration.limits.conftest import MAX_RSS_BYTES, Server, capped_server

HEADERS = {"Content-Type": "application/fhir+json"}
BIG = 300
PHOTO = base64.b64encode(b"\x89PNG" + bytes(range(256)) * 580).decode()  # ~200 KB


def _big_patient(n: int) -> dict[str, object]:
    return {"resourceType": "Patient", "meta": {"tag": [{"system": "urn:big", "code": "big"}]},
            "identifier": [{"system": "urn:big", "value": str(n)}],
            "name": [{"family": "Amplified"}],
            # a long string, not an attachment (whose data would move to object storage)
            "extension": [{"url": "urn:big", "valueString": PHOTO}]}


@pytest.fixture(scope="module")
def loaded(database_url: str) -> Iterator[str]:
    """A database holding the big Patients (loaded through the API) and ``Patient/amp``."""
    with scratch_database(database_url, "limits_mem") as url:
        with capped_server(url) as s, httpx.Client(base_url=s.base, timeout=120) as c:
            for start in range(0, BIG, 30):
                entries = [{"request": {"method": "POST", "url": "Patient"},
                            "resource": _big_patient(n)} for n in range(start, start + 30)]
                answer = c.post("", headers=HEADERS, content=orjson.dumps(
                    {"resourceType": "Bundle", "type": "transaction", "entry": entries}))
                assert answer.status_code == 200, answer.text[:300]
            small = {"resourceType": "Patient", "id": "amp", "name": [{"family": "Amp"}],
                     "identifier": [{"system": "urn:amp", "value": "1"}]}
            assert c.put("/Patient/amp", headers=HEADERS,
                         content=orjson.dumps(small)).status_code == 201
        yield url


@pytest.fixture
def server(loaded: str) -> Iterator[Server]:
    """A fresh server process per vector: its peak memory is that vector's alone (and a
    vector that kills it does not take the next test's server with it)."""
    with capped_server(loaded) as s:
        yield s


def _outcome(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", response.text[:300]
    return str(body["issue"][0]["code"])


_COPY_X21 = orjson.dumps([{"op": "copy", "from": "/name", "path": "/name/-"}] * 21)


@pytest.mark.parametrize("path", ["/Patient/amp", "/Patient?identifier=urn:amp|1"])
def test_json_patch_amplification_is_413_in_little_memory(server: Server, path: str) -> None:
    with httpx.Client(base_url=server.base, timeout=120) as c:
        response = c.patch(path, content=_COPY_X21,
                           headers={"Content-Type": "application/json-patch+json"})
        assert response.status_code == 413, response.text[:300]
        assert _outcome(response) == "too-costly"  # it copies more than it may
        assert c.get("/Patient/amp").json()["meta"]["versionId"] == "1"
    assert server.peak_rss() <= MAX_RSS_BYTES


def test_json_patch_amplification_in_a_transaction_is_413(server: Server) -> None:
    binary = {"resourceType": "Binary", "contentType": "application/json-patch+json",
              "data": base64.b64encode(_COPY_X21).decode()}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "PATCH", "url": "Patient/amp"}, "resource": binary}]}
    with httpx.Client(base_url=server.base, timeout=120) as c:
        response = c.post("", content=orjson.dumps(bundle), headers=HEADERS)
        assert response.status_code == 413, response.text[:300]
        assert _outcome(response) == "too-costly"
    assert server.peak_rss() <= MAX_RSS_BYTES


def test_batch_of_10000_searches_is_413_in_little_memory(server: Server) -> None:
    entry = {"request": {"method": "GET", "url": "Patient?name=Amplified&_count=1000"}}
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [entry] * 10_000}
    with httpx.Client(base_url=server.base, timeout=120) as c:
        response = c.post("", content=orjson.dumps(bundle), headers=HEADERS)
        assert response.status_code == 413, response.text[:300]
        assert _outcome(response) == "too-costly"
    assert server.peak_rss() <= MAX_RSS_BYTES


def test_four_concurrent_pages_of_1000_big_resources_are_cut(server: Server) -> None:
    """Each page stops at MAX_RESPONSE_BYTES (8 MiB) with a next link; the four at
    once stay within the memory bound."""

    def page() -> tuple[int, int, list[str]]:
        with httpx.Client(timeout=120) as c:
            response = c.get(f"{server.base}/Patient", params={"_tag": "urn:big|big",
                                                                "_count": "1000"})
            body = response.json()
            return (response.status_code, len(response.content),
                    [link["relation"] for link in body.get("link", [])])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: page(), range(4)))
    for status, size, relations in results:
        assert status == 200
        assert size <= 8 * 2 ** 20
        assert "next" in relations
    assert server.peak_rss() <= MAX_RSS_BYTES
