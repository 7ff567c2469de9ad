"""Hostile reads, writes, patches and deletes by id, and conditional interactions:
dot and oversize ids, versions that are no number, If-Match forms, patches that break
the resource or outgrow MAX_RESOURCE_BYTES. Each refusal stores nothing.

The amplifying JSON Patch (``copy`` doubling ``/name`` 21 times) is in
tests/integration/limits/test_memory.py, on a server whose address space is capped:
without the limit it takes gigabytes, which this shared server must not risk."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from tests.conformance.hostile.conftest import HEADERS, Case, check, params

PID = "hostile-p"
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
_LONG_ID = "a" * 65


@pytest.fixture(scope="module", autouse=True)
def patient(fhir: httpx.Client) -> Iterator[None]:
    """The resource the instance cases aim at."""
    body = {"resourceType": "Patient", "id": PID, "name": [{"family": "Hostile"}],
            "identifier": [{"system": "urn:hostile", "value": "p"}]}
    response = fhir.put(f"/Patient/{PID}", content=orjson.dumps(body), headers=HEADERS)
    assert response.status_code in (200, 201)
    yield


def _patch(ops: object) -> bytes:
    return orjson.dumps(ops)


def _fhirpath_patch(*operations: list[dict[str, object]]) -> bytes:
    return orjson.dumps({"resourceType": "Parameters", "parameter": [
        {"name": "operation", "part": op} for op in operations]})


_PATIENT = b'{"resourceType":"Patient","id":"%s"}'

CASES: list[Case] = [
    # -- ids and versions --------------------------------------------------------------
    Case("read-long-id", "GET", f"/Patient/{_LONG_ID}", 404, "not-found"),
    Case("read-unknown-type", "GET", "/Banana/x", 404, "not-found"),
    Case("read-nul-id", "GET", "/Patient/a%00", 404, "not-found"),
    Case("vread-superscript", "GET", f"/Patient/{PID}/_history/1%C2%B3", 404, "not-found"),
    Case("vread-superscript-missing", "GET", "/Patient/x/_history/1%C2%B3", 404,
         "not-found"),
    Case("vread-negative", "GET", f"/Patient/{PID}/_history/-1", 404, "not-found"),
    Case("vread-beyond-64-bits", "GET", f"/Patient/{PID}/_history/99999999999999999999999",
         404, "not-found"),
    Case("vread-arabic-digits", "GET", f"/Patient/{PID}/_history/%D9%A1", 404, "not-found"),
    Case("history-long-id", "GET", f"/Patient/{_LONG_ID}/_history", 404, "not-found"),
    Case("update-long-id", "PUT", f"/Patient/{_LONG_ID}", 400, "invalid",
         _PATIENT % _LONG_ID.encode()),
    Case("update-id-mismatch", "PUT", f"/Patient/{PID}", 400, "invalid", _PATIENT % b"other"),
    Case("update-no-id", "PUT", f"/Patient/{PID}", 400, "invalid",
         b'{"resourceType":"Patient"}'),
    Case("update-type-mismatch", "PUT", f"/Patient/{PID}", 400, "invalid",
         b'{"resourceType":"Observation","id":"hostile-p"}'),
    Case("update-id-slash", "PUT", "/Patient/a%2Fb", 404, "not-found", _PATIENT % b"a/b"),
    Case("update-id-space", "PUT", "/Patient/a%20b", 400, "invalid", _PATIENT % b"a b"),
    Case("update-unknown-type", "PUT", "/Banana/x", 404, "not-found",
         b'{"resourceType":"Banana","id":"x"}'),
    Case("create-unknown-type", "POST", "/Banana", 404, "not-found",
         b'{"resourceType":"Banana"}'),
    Case("create-abstract-type", "POST", "/Resource", 404, "not-found",
         b'{"resourceType":"Resource"}'),
    Case("create-on-instance", "POST", f"/Patient/{PID}", 405, "not-supported",
         b'{"resourceType":"Patient"}'),
    # -- If-Match and conditional interactions -----------------------------------------
    Case("if-match-star-missing", "PUT", "/Patient/hostile-missing", 412, "conflict",
         _PATIENT % b"hostile-missing", {"If-Match": "*"}),
    Case("if-match-stale", "PUT", f"/Patient/{PID}", 412, "conflict", _PATIENT % PID.encode(),
         {"If-Match": 'W/"999999"'}),
    Case("if-match-garbage", "PUT", f"/Patient/{PID}", 400, "invalid",
         _PATIENT % PID.encode(), {"If-Match": "banana"}),
    Case("if-match-beyond-64-bits", "PUT", f"/Patient/{PID}", 400, "invalid",
         _PATIENT % PID.encode(), {"If-Match": 'W/"99999999999999999999999"'}),
    Case("if-match-nul", "PUT", f"/Patient/{PID}", 400, "invalid", _PATIENT % PID.encode(),
         {"If-Match": 'W/"1\\u0000"'}),
    Case("if-none-exist-too-many-parameters", "POST", "/Patient", 400, "too-costly",
         b'{"resourceType":"Patient"}',
         {"If-None-Exist": "&".join(f"name=n{i}" for i in range(100))}),
    Case("if-none-exist-bad-parameter", "POST", "/Patient", 400, "invalid",
         b'{"resourceType":"Patient"}', {"If-None-Exist": "banana=x"}),
    Case("if-none-exist-nul", "POST", "/Patient", 400, "invalid", b'{"resourceType":"Patient"}',
         {"If-None-Exist": "name=a%00"}),
    Case("conditional-update-no-criteria", "PUT", "/Patient", 400, "invalid",
         b'{"resourceType":"Patient"}'),
    Case("conditional-update-bad-parameter", "PUT", "/Patient?banana=x", 400, "invalid",
         b'{"resourceType":"Patient"}'),
    Case("conditional-update-chain-deep", "PUT",
         "/Patient?organization.partof.partof.partof.name=x", 400, "too-costly",
         b'{"resourceType":"Patient"}'),
    Case("conditional-update-too-many-values", "PUT",
         "/Patient?name=" + ",".join(f"n{i}" for i in range(1001)), 400, "too-costly",
         b'{"resourceType":"Patient"}'),
    Case("conditional-delete-no-criteria", "DELETE", "/Patient", 400, "invalid"),
    Case("conditional-delete-bad-parameter", "DELETE", "/Patient?banana=x", 400, "invalid"),
    Case("conditional-delete-nul", "DELETE", "/Patient?name=a%00", 400, "invalid"),
    Case("conditional-delete-chain-1000", "DELETE",
         "/Patient?organization" + ".partof" * 1000 + ".name=x", 400, "too-costly"),
    Case("conditional-patch-bad-parameter", "PATCH", "/Patient?banana=x", 400, "invalid",
         _patch([{"op": "add", "path": "/active", "value": True}]), JSON_PATCH),
    Case("delete-unknown-type", "DELETE", "/Banana/x", 404, "not-found"),
    Case("delete-long-id", "DELETE", f"/Patient/{_LONG_ID}", 404, "not-found"),
    # -- JSON Patch --------------------------------------------------------------------
    Case("json-patch-add-huge", "PATCH", f"/Patient/{PID}", 413, "too-long",
         _patch([{"op": "add", "path": "/name/0/text", "value": "x" * (9 * 1024 * 1024)}]),
         JSON_PATCH),
    Case("json-patch-object", "PATCH", f"/Patient/{PID}", 400, "invalid",
         _patch({"op": "add"}), JSON_PATCH),
    Case("json-patch-unknown-op", "PATCH", f"/Patient/{PID}", 400, "invalid",
         _patch([{"op": "banana", "path": "/active"}]), JSON_PATCH),
    Case("json-patch-no-path", "PATCH", f"/Patient/{PID}", 400, "invalid",
         _patch([{"op": "remove"}]), JSON_PATCH),
    Case("json-patch-missing-target", "PATCH", f"/Patient/{PID}", 422, "processing",
         _patch([{"op": "remove", "path": "/telecom/7"}]), JSON_PATCH),
    Case("json-patch-failed-test", "PATCH", f"/Patient/{PID}", 422, "processing",
         _patch([{"op": "test", "path": "/active", "value": 5}]), JSON_PATCH),
    Case("json-patch-invalid-result", "PATCH", f"/Patient/{PID}", 422, "structure",
         _patch([{"op": "add", "path": "/birthDate", "value": 5}]), JSON_PATCH),
    Case("json-patch-change-type", "PATCH", f"/Patient/{PID}", 422, "processing",
         _patch([{"op": "replace", "path": "/resourceType", "value": "Observation"}]),
         JSON_PATCH),
    Case("json-patch-nul", "PATCH", f"/Patient/{PID}", 400, "invalid",
         _patch([{"op": "add", "path": "/name/0/text", "value": "a\x00"}]), JSON_PATCH),
    Case("json-patch-deep", "PATCH", f"/Patient/{PID}", 400, "structure",
         b'[{"op":"add","path":"/x","value":' + b"[" * 100 + b"]" * 100 + b"}]", JSON_PATCH),
    Case("json-patch-missing", "PATCH", "/Patient/hostile-missing", 404, "not-found",
         _patch([{"op": "add", "path": "/active", "value": True}]), JSON_PATCH),
    Case("json-patch-text-plain", "PATCH", f"/Patient/{PID}", 415, "not-supported",
         _patch([{"op": "add", "path": "/active", "value": True}]),
         {"Content-Type": "text/plain"}),
    # -- FHIRPath Patch ----------------------------------------------------------------
    Case("fhirpath-patch-unknown-type", "PATCH", f"/Patient/{PID}", 400, "invalid",
         _fhirpath_patch([{"name": "type", "valueCode": "banana"},
                          {"name": "path", "valueString": "Patient"}])),
    Case("fhirpath-patch-bad-path", "PATCH", f"/Patient/{PID}", 400, "invalid",
         _fhirpath_patch([{"name": "type", "valueCode": "delete"},
                          {"name": "path", "valueString": "Patient.name[[["}])),
    Case("fhirpath-patch-no-path", "PATCH", f"/Patient/{PID}", 400, "invalid",
         _fhirpath_patch([{"name": "type", "valueCode": "delete"}])),
    Case("fhirpath-patch-invalid-result", "PATCH", f"/Patient/{PID}", 422, "structure",
         _fhirpath_patch([{"name": "type", "valueCode": "add"},
                          {"name": "path", "valueString": "Patient"},
                          {"name": "name", "valueString": "birthDate"},
                          {"name": "value", "valueInteger": 5}])),
    Case("fhirpath-patch-huge-value", "PATCH", f"/Patient/{PID}", 413, "too-long",
         _fhirpath_patch([{"name": "type", "valueCode": "add"},
                          {"name": "path", "valueString": "Patient.name[0]"},
                          {"name": "name", "valueString": "text"},
                          {"name": "value", "valueString": "x" * (9 * 1024 * 1024)}])),
    Case("fhirpath-patch-nul", "PATCH", f"/Patient/{PID}", 400, "invalid",
         _fhirpath_patch([{"name": "type", "valueCode": "replace"},
                          {"name": "path", "valueString": "Patient.name[0].family"},
                          {"name": "value", "valueString": "a\x00"}])),
    Case("fhirpath-patch-not-parameters", "PATCH", f"/Patient/{PID}", 400, "invalid",
         b'{"resourceType":"Patient"}'),
]


@pytest.mark.parametrize("case", params(CASES))
def test_hostile_interaction_is_refused(case: Case, fhir: httpx.Client,
                                        stored: Callable[[], int]) -> None:
    check(case, fhir, stored)


def test_if_match_star_on_an_existing_resource_updates_it(fhir: httpx.Client) -> None:
    body = {"resourceType": "Patient", "id": PID, "name": [{"family": "Hostile"}],
            "identifier": [{"system": "urn:hostile", "value": "p"}]}
    response = fhir.put(f"/Patient/{PID}", content=orjson.dumps(body),
                        headers={**HEADERS, "If-Match": "*"})
    assert response.status_code == 200, response.text[:300]
    assert response.json()["id"] == PID


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("DELETE", "/metadata", "GET, HEAD"),
    ("POST", "/metadata", "GET, HEAD"),
    ("PUT", "/_history", "GET, HEAD"),
    ("PATCH", "/metadata", "GET, HEAD"),
    ("POST", f"/Patient/{PID}", "DELETE, GET, HEAD, PATCH, PUT"),
    ("POST", f"/Patient/{PID}/_history", "GET, HEAD"),
    ("PUT", f"/Patient/{PID}/_history/1", "GET, HEAD"),
    ("DELETE", "", "GET, HEAD, POST"),
    ("GET", "/$reindex", "POST"),
    ("DELETE", "/Patient/$reindex", "POST"),
])
def test_405_names_what_is_allowed(fhir: httpx.Client, stored: Callable[[], int],
                                   method: str, path: str, allow: str) -> None:
    before = stored()
    response = fhir.request(method, path, content=b"{}" if method in ("POST", "PUT") else None,
                            headers=HEADERS)
    assert response.status_code == 405, response.text[:300]
    assert response.headers["allow"] == allow
    assert response.json()["issue"][0]["code"] == "not-supported"
    assert stored() == before
