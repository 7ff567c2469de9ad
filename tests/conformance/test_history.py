"""history at instance, type and system level: order, entries, paging, _since, _at."""

from __future__ import annotations

import uuid
from datetime import timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlparse

import httpx
import orjson
import pytest

pytestmark = pytest.mark.requires(interaction=[
    ("Patient", "history-instance"), ("Patient", "history-type"), "history-system"])

HEADERS = {"Content-Type": "application/fhir+json"}


def _put(client: httpx.Client, rtype: str, rid: str, **fields: object) -> httpx.Response:
    body = {"resourceType": rtype, "id": rid, **fields}
    response = client.put(f"/{rtype}/{rid}", content=orjson.dumps(body), headers=HEADERS)
    assert response.status_code in (200, 201), response.text
    return response


def test_instance_history_newest_first_with_request_and_response(client: httpx.Client) -> None:
    rid = f"h-{uuid.uuid4().hex[:10]}"
    _put(client, "Patient", rid, active=True)
    _put(client, "Patient", rid, active=False)
    assert client.delete(f"/Patient/{rid}").status_code == 204
    response = client.get(f"/Patient/{rid}/_history")
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "history"
    assert bundle["total"] == 3
    assert bundle["link"][0] == {"relation": "self",
                                 "url": f"{client.base_url}Patient/{rid}/_history"}
    entries = bundle["entry"]
    assert [e["request"] for e in entries] == [
        {"method": "DELETE", "url": f"Patient/{rid}"},
        {"method": "PUT", "url": f"Patient/{rid}"},
        {"method": "PUT", "url": f"Patient/{rid}"},
    ]
    assert [e["response"]["status"] for e in entries] == [
        "204 No Content", "200 OK", "201 Created"]
    assert [e["response"]["etag"] for e in entries] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert "resource" not in entries[0]
    assert entries[1]["resource"]["active"] is False
    assert entries[2]["resource"]["meta"]["versionId"] == "1"
    assert entries[1]["response"]["location"] == f"Patient/{rid}/_history/2"
    assert all(e["fullUrl"] == f"{client.base_url}Patient/{rid}" for e in entries)
    stamps = [e["response"]["lastModified"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)


def test_history_of_unknown_instance_is_404(client: httpx.Client) -> None:
    assert client.get("/Patient/nobody-here/_history").status_code == 404
    assert client.get("/Nope/_history").status_code == 404


def test_type_history_paging_visits_every_version_once(client: httpx.Client) -> None:
    rtype = "Basic"
    ids = [f"page-{uuid.uuid4().hex[:8]}" for _ in range(7)]
    for rid in ids:
        _put(client, rtype, rid, code={"text": "paging"})
    _put(client, rtype, ids[0], code={"text": "paging again"})
    first = client.get(f"/{rtype}/_history", params={"_count": "3"}).json()
    seen: list[tuple[str, str]] = []
    page = first
    pages = 0
    while True:
        pages += 1
        assert len(page["entry"]) <= 3
        seen += [(e["resource"]["id"], e["resource"]["meta"]["versionId"])
                 for e in page["entry"]]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not nxt:
            break
        query = parse_qs(urlparse(nxt[0]).query)
        assert query["_count"] == ["3"]
        page = client.get(nxt[0]).json()
    assert len(seen) == len(set(seen))
    mine = {s for s in seen if s[0] in ids}
    assert mine == {(rid, "1") for rid in ids} | {(ids[0], "2")}
    assert pages >= 3


def test_since_and_at(client: httpx.Client) -> None:
    rid = f"t-{uuid.uuid4().hex[:10]}"
    first = _put(client, "Patient", rid, active=True).json()
    second = _put(client, "Patient", rid, active=False).json()
    t1 = first["meta"]["lastUpdated"]
    t2 = second["meta"]["lastUpdated"]
    since = client.get(f"/Patient/{rid}/_history", params={"_since": t2}).json()
    assert [e["resource"]["meta"]["versionId"] for e in since["entry"]] == ["2"]
    at_first = client.get(f"/Patient/{rid}/_history", params={"_at": t1}).json()
    assert [e["resource"]["meta"]["versionId"] for e in at_first["entry"]] == ["1"]
    future = client.get(f"/Patient/{rid}/_history", params={"_since": "2999-01-01T00:00:00Z"})
    assert future.status_code == 200
    assert future.json().get("entry", []) == []
    bad = client.get(f"/Patient/{rid}/_history", params={"_since": "2020-13-45"})
    assert bad.status_code == 400
    assert "_since" in bad.json()["issue"][0]["diagnostics"]
    assert client.get(f"/Patient/{rid}/_history", params={"_count": "x"}).status_code == 400
    assert client.get(f"/Patient/{rid}/_history",
                      params={"_cursor": "!!"}).status_code == 400


def test_system_history_contains_recent_writes(client: httpx.Client) -> None:
    rid = f"s-{uuid.uuid4().hex[:10]}"
    written = _put(client, "Organization", rid, name="Sys")
    # From a second before the write: a deployment's audit trail (AUDIT=true) adds an
    # AuditEvent per request to the system history, so the newest few may be only those.
    since = parsedate_to_datetime(written.headers["last-modified"]) - timedelta(seconds=1)
    bundle = client.get("/_history", params={"_since": since.isoformat(),
                                             "_count": "1000"}).json()
    assert bundle["type"] == "history"
    assert f"{client.base_url}Organization/{rid}" in [e["fullUrl"] for e in bundle["entry"]]


def test_recreation_after_delete_is_201_in_history_too(client: httpx.Client) -> None:
    pid = f"recreate-{uuid.uuid4().hex[:10]}"
    body = orjson.dumps({"resourceType": "Patient", "id": pid})
    headers = {"Content-Type": "application/fhir+json"}
    assert client.put(f"/Patient/{pid}", content=body, headers=headers).status_code == 201
    assert client.delete(f"/Patient/{pid}").status_code == 204
    again = client.put(f"/Patient/{pid}", content=body, headers=headers)
    assert again.status_code == 201 and again.headers["etag"] == 'W/"3"'
    entries = client.get(f"/Patient/{pid}/_history").json()["entry"]
    assert [(e["request"]["method"], e["response"]["status"]) for e in entries] == [
        ("PUT", "201 Created"), ("DELETE", "204 No Content"), ("PUT", "201 Created")]
