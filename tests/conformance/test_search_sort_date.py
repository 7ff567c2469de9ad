"""Sorting by one date parameter, which pages walk in index order
(``fhir_server.storage.sql.paging.walked_page``): the latest end descending, the
earliest start ascending, several values of one resource counted once, ties by
insertion order, resources without a value last; the same rows paging back."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

HEADERS = {"Content-Type": "application/fhir+json"}
#: effective[x] of each Observation, in creation order (None: no value).
EFFECTIVE: list[dict[str, Any] | None] = [
    {"effectiveDateTime": "2020-01-05T10:00:00Z"},
    {"effectiveDateTime": "2020-01-03"},
    None,
    {"effectiveDateTime": "2020-01-05T10:00:00Z"},
    {"effectivePeriod": {"start": "2019-12-01", "end": "2020-02-01"}},
    {"effectiveTiming": {"event": ["2019-06-01T00:00:00Z", "2020-01-10T00:00:00Z"]}},
    None,
    {"effectiveDateTime": "2020-01-04T00:00:00Z"},
    {"effectiveDateTime": "2018"},
]
#: The orders by index into EFFECTIVE.
LATEST_FIRST = [4, 5, 0, 3, 7, 1, 8, 2, 6]
EARLIEST_FIRST = [8, 5, 4, 1, 7, 0, 3, 2, 6]


def _pages(client: httpx.Client, response: httpx.Response, relation: str
           ) -> tuple[list[list[str]], httpx.Response]:
    pages: list[list[str]] = []
    while True:
        assert response.status_code == 200, response.text
        bundle = response.json()
        pages.append([e["resource"]["id"] for e in bundle.get("entry", [])])
        links = [link["url"] for link in bundle["link"] if link["relation"] == relation]
        if not links or len(pages) > 20:
            return pages, response
        response = client.get(links[0])


@pytest.mark.parametrize(("sort", "expected"), [("-date", LATEST_FIRST),
                                                ("date", EARLIEST_FIRST)])
@pytest.mark.parametrize("count", [2, 4, 20])
def test_pages_forward_and_back(client: httpx.Client, sort: str, expected: list[int],
                                count: int) -> None:
    tag = f"sd{uuid.uuid4().hex[:10]}"
    for i, effective in enumerate(EFFECTIVE):
        resource = {"resourceType": "Observation", "id": f"{tag}-{i}", "status": "final",
                    "meta": {"tag": [{"system": "urn:sort-date", "code": tag}]},
                    "code": {"text": "x"}, **(effective or {})}
        response = client.put(f"/Observation/{resource['id']}",
                              content=orjson.dumps(resource), headers=HEADERS)
        assert response.status_code == 201, response.text
    first = client.get("/Observation", params={"_tag": f"urn:sort-date|{tag}",
                                               "_sort": sort, "_count": str(count)})
    forward, last = _pages(client, first, "next")
    ids = [f"{tag}-{i}" for i in expected]
    assert [i for page in forward for i in page] == ids
    assert all(len(page) == count for page in forward[:-1])
    back, _ = _pages(client, last, "previous")
    assert [i for page in reversed(back) for i in page] == ids
