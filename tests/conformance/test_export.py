"""Bulk Data ``$export`` on the wire: kick-off, polling, manifest, files, levels, cancel."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

pytestmark = [pytest.mark.http_only,  # async kick-offs are not Bundle entries
              pytest.mark.requires(operation="export")]

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
JSON = {"Content-Type": "application/fhir+json"}


def _put(client: httpx.Client, resource: dict[str, Any]) -> None:
    answer = client.put(f"/{resource['resourceType']}/{resource['id']}",
                        content=orjson.dumps(resource), headers=JSON)
    assert answer.status_code in (200, 201), answer.text


def _population(client: httpx.Client, tag: str, patients: int = 3,
                observations: int = 4) -> list[str]:
    """Patients with Observations (one final, the rest preliminary), all tagged."""
    meta = {"tag": [{"system": "urn:export", "code": tag}]}
    ids = []
    for p in range(patients):
        pid = f"{tag}-p{p}"
        ids.append(pid)
        _put(client, {"resourceType": "Patient", "id": pid, "meta": meta,
                      "name": [{"family": f"Export{p}"}]})
        for o in range(observations):
            _put(client, {"resourceType": "Observation", "id": f"{tag}-p{p}-o{o}",
                          "meta": meta, "status": "final" if o == 0 else "preliminary",
                          "code": {"text": "weight"}, "subject": {"reference": f"Patient/{pid}"}})
    # a practitioner is in no patient's compartment
    _put(client, {"resourceType": "Practitioner", "id": f"{tag}-dr", "meta": meta})
    return ids


def _finish(client: httpx.Client, status_url: str, seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = client.get(status_url)
        if answer.status_code == 200:
            assert answer.headers["content-type"].startswith("application/fhir+json")
            return dict(answer.json())
        assert answer.status_code == 202, answer.text
        assert answer.headers["x-progress"]
        assert answer.headers["retry-after"] == "2"
        time.sleep(0.2)
    raise AssertionError("the export did not finish in time")


def _kick_off(client: httpx.Client, path: str, params: Any = None) -> str:
    answer = client.get(path, params=params, headers=ASYNC)
    assert answer.status_code == 202, answer.text
    location = answer.headers["content-location"]
    assert "/_jobs/" in location
    return location


def _lines(client: httpx.Client, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every line of every file, parsed, by type (each line's type is its file's)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for output in manifest["output"]:
        answer = client.get(output["url"], headers={"Accept": "application/fhir+ndjson"})
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/fhir+ndjson"
        lines = [orjson.loads(line) for line in answer.content.splitlines()]
        assert len(lines) == output["count"]
        assert {r["resourceType"] for r in lines} <= {output["type"]}
        found.setdefault(output["type"], []).extend(lines)
    return found


def _tagged(tag: str) -> list[tuple[str, str]]:
    return [("_type", "Patient,Observation,Practitioner"),
            ("_typeFilter", f"Patient?_tag=urn:export|{tag}"),
            ("_typeFilter", f"Observation?_tag=urn:export|{tag}"),
            ("_typeFilter", f"Practitioner?_tag=urn:export|{tag}")]


def test_system_export_manifest_and_files(client: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:10]
    _population(client, tag)
    status_url = _kick_off(client, "/$export", _tagged(tag))
    manifest = _finish(client, status_url)
    # AUTH_MODE=off in the test server; a deployment asked with a token requires one
    assert manifest["requiresAccessToken"] is ("authorization" in client.headers)
    assert manifest["error"] == []
    assert manifest["request"].endswith("/$export?" + httpx.QueryParams(_tagged(tag)).__str__())
    assert manifest["transactionTime"].endswith("Z")
    found = _lines(client, manifest)
    assert {t: len(rs) for t, rs in found.items()} == {
        "Patient": 3, "Observation": 12, "Practitioner": 1}
    stored = client.get(f"/Observation/{tag}-p0-o0").json()
    assert next(r for r in found["Observation"] if r["id"] == f"{tag}-p0-o0") == stored


def test_counts_equal_the_searches_counts(client: httpx.Client) -> None:
    _population(client, uuid.uuid4().hex[:10])
    manifest = _finish(client, _kick_off(client, "/$export",
                                         {"_type": "Patient,Observation"}))
    counts: dict[str, int] = {}
    for output in manifest["output"]:
        counts[output["type"]] = counts.get(output["type"], 0) + output["count"]
    for rtype in ("Patient", "Observation"):
        total = client.get(f"/{rtype}", params={"_summary": "count"}).json()["total"]
        assert counts[rtype] == total
    assert sum(len(v) for v in _lines(client, manifest).values()) == sum(counts.values())


def test_type_filter_and_since(client: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:10]
    _population(client, tag)
    manifest = _finish(client, _kick_off(client, "/$export", {
        "_type": "Observation",
        "_typeFilter": f"Observation?_tag=urn:export|{tag}&status=final"}))
    found = _lines(client, manifest)
    assert sorted(r["id"] for r in found["Observation"]) == [
        f"{tag}-p{p}-o0" for p in range(3)]
    # _since: only what changed after the first export's transaction time
    time.sleep(0.05)
    since = manifest["transactionTime"]
    _put(client, {"resourceType": "Observation", "id": f"{tag}-late", "status": "final",
                  "meta": {"tag": [{"system": "urn:export", "code": tag}]},
                  "code": {"text": "late"}})
    later = _finish(client, _kick_off(client, "/$export", {
        "_type": "Observation", "_since": since,
        "_typeFilter": f"Observation?_tag=urn:export|{tag}"}))
    assert [r["id"] for r in _lines(client, later)["Observation"]] == [f"{tag}-late"]


def test_type_filters_of_one_type_are_ored(client: httpx.Client) -> None:
    """Several queries of one type (comma-joined or repeated) export what matches any;
    a comma inside a query's values stays the query's own."""
    tag = uuid.uuid4().hex[:10]
    _population(client, tag)
    final = f"Observation?_tag=urn:export|{tag}&status=final"
    of_p1 = f"Observation?_tag=urn:export|{tag}&subject=Patient/{tag}-p1"
    expected = sorted({f"{tag}-p{p}-o0" for p in range(3)}
                      | {f"{tag}-p1-o{o}" for o in range(4)})
    for params in ({"_type": "Observation", "_typeFilter": f"{final},{of_p1}"},
                   [("_type", "Observation"), ("_typeFilter", final),
                    ("_typeFilter", of_p1)]):
        found = _lines(client, _finish(client, _kick_off(client, "/$export", params)))
        assert sorted(r["id"] for r in found["Observation"]) == expected
    either = f"Observation?_tag=urn:export|{tag}&status=final,preliminary&subject=Patient/{tag}-p2"
    found = _lines(client, _finish(client, _kick_off(client, "/$export", {
        "_type": "Observation", "_typeFilter": either})))
    assert len(found["Observation"]) == 4


def test_patient_level_leaves_out_other_types(client: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:10]
    _population(client, tag)
    manifest = _finish(client, _kick_off(client, "/Patient/$export", _tagged(tag)[1:]))
    found = _lines(client, manifest)
    # other tests' patients have records too (the server is shared): what is this
    # test's is all there, and nothing is outside every patient's compartment
    assert "Practitioner" not in found and "AuditEvent" not in found
    assert {"Observation", "Patient"} <= set(found)
    assert len(found["Patient"]) == 3 and len(found["Observation"]) == 12


def test_group_level_exports_the_members(client: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:10]
    ids = _population(client, tag)
    group = {"resourceType": "Group", "id": f"{tag}-g", "type": "person", "actual": True,
             "member": [{"entity": {"reference": f"Patient/{ids[0]}"}},
                        {"entity": {"reference": f"Patient/{ids[2]}"}},
                        {"entity": {"reference": f"Practitioner/{tag}-dr"}}]}
    _put(client, group)
    manifest = _finish(client, _kick_off(client, f"/Group/{tag}-g/$export",
                                         {"_type": "Patient,Observation"}))
    found = _lines(client, manifest)
    assert sorted(r["id"] for r in found["Patient"]) == [ids[0], ids[2]]
    assert {r["subject"]["reference"] for r in found["Observation"]} == {
        f"Patient/{ids[0]}", f"Patient/{ids[2]}"}
    assert len(found["Observation"]) == 8


def test_post_kick_off_with_parameters(client: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:10]
    _population(client, tag, patients=1)
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Patient"},
        {"name": "_typeFilter", "valueString": f"Patient?_tag=urn:export|{tag}"},
        {"name": "_outputFormat", "valueString": "application/fhir+ndjson"}]}
    answer = client.post("/$export", content=orjson.dumps(body), headers={**ASYNC, **JSON})
    assert answer.status_code == 202
    found = _lines(client, _finish(client, answer.headers["content-location"]))
    assert [r["id"] for r in found["Patient"]] == [f"{tag}-p0"]


def test_cancel_then_status_is_404(client: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:10]
    status_url = _kick_off(client, "/$export", {"_type": "Patient",
                                                "_typeFilter": f"Patient?_tag=urn:x|{tag}"})
    cancelled = client.delete(status_url)
    assert cancelled.status_code == 202  # queued, running or already done alike
    gone = client.get(status_url)
    assert gone.status_code == 404
    assert gone.json()["issue"][0]["code"] == "not-found"


@pytest.mark.parametrize(("params", "headers", "status", "code"), [
    ({}, {"Accept": "application/fhir+json"}, 400, "invalid"),  # no Prefer
    ({"_type": "Nonsense"}, ASYNC, 400, "invalid"),
    ({"_typeFilter": "Nonsense?x=1"}, ASYNC, 400, "invalid"),
    ({"_outputFormat": "text/csv"}, ASYNC, 400, "invalid"),
    ({"_since": "yesterday"}, ASYNC, 400, "invalid"),
    ({"_typeFilter": "Patient?nosuchparam=1"}, ASYNC, 400, "invalid"),
    ({"_typeFilter": "Patient?name=x,Patient?nosuchparam=1"}, ASYNC, 400, "invalid"),
    ({"_typeFilter": "Patient?_count=5"}, ASYNC, 400, "invalid"),
    ({"patient": "Patient/1"}, ASYNC, 400, "invalid"),
])
def test_kick_off_errors(client: httpx.Client, params: dict[str, str],
                         headers: dict[str, str], status: int, code: str) -> None:
    answer = client.get("/$export", params=params, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["issue"][0]["code"] == code


def test_unknown_group_and_file(client: httpx.Client) -> None:
    answer = client.get("/Group/no-such-group/$export", headers=ASYNC)
    assert answer.status_code == 404
    assert answer.json()["issue"][0]["code"] == "not-found"
    status_url = _kick_off(client, "/$export", {"_type": "Organization",
                                                "_typeFilter": "Organization?name=zzqqx"})
    manifest = _finish(client, status_url)
    assert manifest["output"] == []
    missing = client.get(f"{status_url}/Patient-1.ndjson")
    assert missing.status_code == 404


def test_delete_of_a_finished_export_retires_it(client: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:10]
    _population(client, tag, patients=1)
    status_url = _kick_off(client, "/$export", _tagged(tag)[:2])
    manifest = _finish(client, status_url)
    file_url = manifest["output"][0]["url"]
    assert client.get(file_url).status_code == 200
    assert client.delete(status_url).status_code == 202
    assert client.get(status_url).status_code == 404
    assert client.get(file_url).status_code == 404
