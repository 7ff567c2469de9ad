"""Paging while another client writes: every match is visited exactly once.

Keyset cursors (not OFFSET) make this hold: a page starts after the last row of the
previous one by its sort values, so rows created, updated or created-and-deleted
meanwhile neither shift nor repeat the rows that were there all along.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest

HEADERS = {"Content-Type": "application/fhir+json"}
ORIGINAL = 24
CODES = ("1111-1", "2222-2", "3333-3")


def _observation(tag: str, i: int, note: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation", "id": f"{tag}-o{i:03d}",
        "meta": {"tag": [{"system": "urn:paging", "code": tag}]}, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": CODES[i % 3]}]},
        "effectiveDateTime": f"2020-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"}
    if note:
        resource["note"] = [{"text": note}]
    return resource


def _put(client: httpx.Client, resource: dict[str, Any]) -> None:
    response = client.put(f"/Observation/{resource['id']}", content=orjson.dumps(resource),
                          headers=HEADERS)
    assert response.status_code in (200, 201), response.text


def _writer(base_url: str, tag: str, stop: threading.Event, rounds: threading.Semaphore,
            errors: list[str], headers: httpx.Headers) -> None:
    """Another client: creates matching Observations, updates existing ones (a note,
    not a sort value), creates and deletes, as fast as it can until told to stop;
    ``rounds`` is released after each round; ``headers``: the test client's (its
    token, against a deployment)."""
    with httpx.Client(base_url=base_url, timeout=30, headers=headers) as other:
        n = 1000
        while not stop.is_set():
            try:
                _put(other, _observation(tag, n))
                _put(other, _observation(tag, n % ORIGINAL, note=f"edit {n}"))
                _put(other, _observation(tag, n + 1))
                assert other.delete(f"/Observation/{tag}-o{n + 1:03d}").status_code == 204
            except AssertionError as exc:
                errors.append(str(exc))
                return
            rounds.release()
            n += 2


@pytest.mark.parametrize("sort", [None, "-date", "code,date", "_id", "-_id"])
def test_each_match_once_while_another_client_writes(client: httpx.Client,
                                                     sort: str | None) -> None:
    tag = f"pg{uuid.uuid4().hex[:10]}"
    for i in range(ORIGINAL):
        _put(client, _observation(tag, i))
    params = {"_tag": f"urn:paging|{tag}", "_count": "3"}
    if sort:
        params["_sort"] = sort
    stop, rounds = threading.Event(), threading.Semaphore(0)
    errors: list[str] = []
    writer = threading.Thread(target=_writer,
                              args=(str(client.base_url), tag, stop, rounds, errors,
                                    client.headers))
    writer.start()
    try:
        response = client.get("/Observation", params=params)
        seen: list[str] = []
        pages = 0
        while True:
            assert response.status_code == 200, response.text
            bundle = response.json()
            seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
            pages += 1
            nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
            if not nxt or pages > 200:
                break
            # At least one round of writes between any two pages.
            assert rounds.acquire(timeout=30), errors
            response = client.get(nxt[0])
    finally:
        stop.set()
        writer.join(30)
    assert errors == []
    assert pages >= ORIGINAL // 3
    repeated = [i for i, n in Counter(seen).items() if n > 1]
    assert repeated == []
    original = {f"{tag}-o{i:03d}" for i in range(ORIGINAL)}
    assert original <= set(seen), sorted(original - set(seen))
