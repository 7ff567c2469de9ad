"""MAX_RESPONSE_BYTES on the wire: search and history pages cut short before the limit,
each match once through the next links, a resource larger than the limit alone on its
page, includes cut with a warning; the Bundle streamed (gzip, _pretty) unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import running_server, scratch_database

LIMIT = 200_000
NOTE = 20_000
#: resources of about NOTE bytes: ten fit on a page of LIMIT bytes, never more
COUNT = 30


def _basic(i: int, size: int = NOTE, code: str = "paged") -> dict[str, Any]:
    return {"resourceType": "Basic", "id": f"{code}-{i}",
            "code": {"coding": [{"system": "urn:test", "code": code}]},
            "extension": [{"url": "urn:test:note", "valueString": f"{i:05}" * (size // 5)}]}


@pytest.fixture(scope="module")
def limited(database_url: str) -> Iterator[httpx.Client]:
    """A client of a server whose responses are limited to LIMIT bytes, with COUNT
    resources of about NOTE bytes each stored."""
    with scratch_database(database_url, "limit") as url, \
            running_server(url, MAX_RESPONSE_BYTES=str(LIMIT)) as base, \
            httpx.Client(base_url=f"{base}/fhir", timeout=60) as client:
        for i in range(COUNT):
            assert client.put(f"/Basic/paged-{i}", json=_basic(i)).status_code == 201
        yield client


def _pages(client: httpx.Client, url: str, **params: str) -> Iterator[httpx.Response]:
    answer = client.get(url, params=params)
    while True:
        assert answer.status_code == 200, answer.text
        yield answer
        links = {link["relation"]: link["url"] for link in answer.json()["link"]}
        if "next" not in links:
            return
        answer = client.get(links["next"])


def _entries(answer: httpx.Response, mode: str = "match") -> list[dict[str, Any]]:
    return [e for e in answer.json().get("entry", [])
            if e.get("search", {}).get("mode", "match") == mode]


def _outcome(answer: httpx.Response) -> list[dict[str, Any]]:
    found = _entries(answer, "outcome")
    return found[0]["resource"]["issue"] if found else []


def test_search_pages_stay_within_the_limit_and_hold_every_match_once(
        limited: httpx.Client) -> None:
    ids: list[str] = []
    pages = list(_pages(limited, "/Basic", code="urn:test|paged", _count="100"))
    assert len(pages) > 2
    for page in pages:
        assert len(page.content) <= LIMIT
        ids += [e["resource"]["id"] for e in _entries(page)]
    assert sorted(ids) == sorted(f"paged-{i}" for i in range(COUNT))
    first = pages[0]
    assert 1 < len(_entries(first)) < COUNT
    [issue] = _outcome(first)
    assert issue["severity"] == "information" and issue["code"] == "informational"
    assert f"past {LIMIT} bytes (MAX_RESPONSE_BYTES)" in issue["diagnostics"]
    assert _outcome(pages[-1]) == []  # the last page holds what is left: no cut


def test_the_next_link_continues_right_after_the_last_entry(limited: httpx.Client) -> None:
    pages = list(_pages(limited, "/Basic", code="urn:test|paged", _sort="_id", _count="100"))
    ids = [[e["resource"]["id"] for e in _entries(p)] for p in pages]
    assert [i for page in ids for i in page] == sorted(f"paged-{i}" for i in range(COUNT))
    # and back: the page before the second is the first, cut the same way
    links = {link["relation"]: link["url"] for link in pages[1].json()["link"]}
    back = limited.get(links["previous"])
    assert [e["resource"]["id"] for e in _entries(back)] == ids[0]


def test_history_pages_stay_within_the_limit_and_hold_every_version_once(
        limited: httpx.Client) -> None:
    seen: list[str] = []
    pages = list(_pages(limited, "/Basic/_history", _count="100"))
    assert len(pages) > 2
    for page in pages:
        assert len(page.content) <= LIMIT
        seen += [e["fullUrl"].rsplit("/", 1)[1] for e in page.json()["entry"]]
    basics = [s for s in seen if s.startswith("paged-")]
    assert sorted(basics) == sorted(f"paged-{i}" for i in range(COUNT))


def test_a_resource_larger_than_the_limit_comes_alone(limited: httpx.Client) -> None:
    for i in range(2):
        assert limited.put(f"/Basic/big-{i}", json=_basic(i, LIMIT + 50_000, "big")
                           ).status_code == 201
    pages = list(_pages(limited, "/Basic", code="urn:test|big", _count="10"))
    assert [[e["resource"]["id"] for e in _entries(p)] for p in pages] in (
        [["big-0"], ["big-1"]], [["big-1"], ["big-0"]])
    assert _outcome(pages[0])[0]["code"] == "informational"


def test_includes_are_cut_with_a_warning(limited: httpx.Client) -> None:
    for i in range(12):
        patient = {"resourceType": "Patient", "id": f"inc-{i}",
                   "name": [{"text": "x" * NOTE}]}
        assert limited.put(f"/Patient/inc-{i}", json=patient).status_code == 201
        observation = {"resourceType": "Observation", "id": f"inc-{i}", "status": "final",
                       "code": {"coding": [{"system": "urn:test", "code": "inc"}]},
                       "subject": {"reference": f"Patient/inc-{i}"}}
        assert limited.put(f"/Observation/inc-{i}", json=observation).status_code == 201
    answer = limited.get("/Observation", params={
        "code": "urn:test|inc", "_include": "Observation:subject", "_count": "12"})
    assert answer.status_code == 200
    assert len(answer.content) <= LIMIT
    assert len(_entries(answer)) == 12
    assert 0 < len(_entries(answer, "include")) < 12
    [issue] = _outcome(answer)
    assert issue["severity"] == "warning" and issue["code"] == "not-supported"
    assert f"within {LIMIT} bytes (MAX_RESPONSE_BYTES)" in issue["diagnostics"]


@pytest.mark.http_only
def test_a_streamed_page_is_the_same_gzipped_and_pretty(limited: httpx.Client) -> None:
    params = {"code": "urn:test|paged", "_sort": "_id", "_count": "100"}
    plain = limited.get("/Basic", params=params, headers={"accept-encoding": "identity"})
    assert "content-length" not in plain.headers  # sent in pieces
    assert plain.headers["transfer-encoding"] == "chunked"
    zipped = limited.get("/Basic", params=params, headers={"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert json.loads(zipped.content) == plain.json()  # httpx took the gzip off
    pretty = limited.get("/Basic", params={**params, "_pretty": "true"})
    assert pretty.status_code == 200
    assert pretty.text.startswith('{\n  "resourceType": "Bundle"')
    assert pretty.json() == plain.json()
