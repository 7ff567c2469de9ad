"""Hostile operations, jobs, SearchParameters, operator and documentation endpoints and
the authorization server: expressions past FHIRPATH_MAX_BYTES / FHIRPATH_MAX_NODES
(422 too-costly), SearchParameters written by a non-operator (403), ``$reindex`` asked
twice (one job), jobs cancelled by DELETE, OAuth requests of every wrong shape."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from tests.conformance.hostile.conftest import HEADERS, Case, check, outcome_code, params
from tests.integration.auth.conftest import Smart, start_smart


def _parameter(code: str, expression: str) -> bytes:
    return orjson.dumps({
        "resourceType": "SearchParameter", "url": f"http://example.org/sp/{code}",
        "name": code, "status": "active", "description": "hostile", "code": code,
        "base": ["Patient"], "type": "string", "expression": expression})


_NODES = " or ".join(f"Patient.name.where(given = 'g{i}').family" for i in range(100))

CASES: list[Case] = [
    Case("searchparameter-expression-4097-bytes", "POST", "/SearchParameter", 422,
         "too-costly", _parameter("hostile-bytes", "Patient.name." + "a" * 4097)),
    Case("searchparameter-expression-nodes", "POST", "/SearchParameter", 422, "too-costly",
         _parameter("hostile-nodes", _NODES)),
    Case("searchparameter-expression-nested", "POST", "/SearchParameter", 422, "too-costly",
         _parameter("hostile-nested", "(" * 300 + "Patient.name" + ")" * 300)),
    Case("searchparameter-expression-bytes-on-update", "PUT", "/SearchParameter/hostile-u",
         422, "too-costly", orjson.dumps({
             **orjson.loads(_parameter("hostile-u", "Patient.name." + "b" * 5000)),
             "id": "hostile-u"})),
    Case("searchparameter-expression-invalid", "POST", "/SearchParameter", 422, "invalid",
         _parameter("hostile-invalid", "Patient.name[[[")),
    Case("reindex-unknown-type", "POST", "/Banana/$reindex", 404, "not-found", b"{}"),
    Case("operation-unknown-system", "POST", "/$banana", 404, "not-found", b"{}"),
    Case("operation-unknown-type", "POST", "/Patient/$banana", 404, "not-found", b"{}"),
    Case("operation-unknown-instance", "POST", "/Patient/x/$banana", 404, "not-found", b"{}"),
    Case("job-unknown", "GET", "/_jobs/999999999", 404, "not-found"),
    Case("job-beyond-64-bits", "GET", "/_jobs/99999999999999999999999", 404, "not-found"),
    Case("job-not-a-number", "GET", "/_jobs/banana", 404, "not-found"),
    Case("job-cancel-unknown", "DELETE", "/_jobs/999999999", 404, "not-found"),
    Case("operationdefinition-unknown", "GET", "/OperationDefinition/banana", 404,
         "not-found"),
    Case("metadata-format-turtle", "GET", "/metadata?_format=text/turtle", 406,
         "not-supported"),
]


@pytest.mark.parametrize("case", params(CASES))
def test_hostile_operation_is_refused(case: Case, fhir: httpx.Client,
                                      stored: Callable[[], int]) -> None:
    check(case, fhir, stored)


def _job_status(fhir: httpx.Client, url: str) -> str:
    params = {p["name"]: p for p in fhir.get(url).json()["parameter"]}
    return str(params["status"]["valueCode"])


def test_reindex_asked_twice_runs_one_job_and_delete_cancels_it(fhir: httpx.Client) -> None:
    first = fhir.post("/$reindex")
    second = fhir.post("/$reindex")
    assert first.status_code == 202, first.text[:300]
    assert second.status_code == 202, second.text[:300]
    url, again = first.headers["content-location"], second.headers["content-location"]
    if again != url:  # a second job only once the first has ended
        assert _job_status(fhir, url) in ("done", "failed", "cancelled")
    cancelled = fhir.delete(again)
    assert cancelled.status_code in (200, 202, 204), cancelled.text[:300]
    deadline = time.monotonic() + 10
    while _job_status(fhir, again) in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _job_status(fhir, again) in ("cancelled", "done")


#: /api and /auth: (name, method, path, form or JSON body, status, OperationOutcome code
#: or OAuth error)
ROOT: list[tuple[str, str, str, dict[str, str] | bytes | None, int, str]] = [
    ("openapi-unknown-type", "GET", "/api/openapi/Banana.json", None, 404, "not-found"),
    ("openapi-traversal", "GET", "/api/openapi/..%2F..%2Fsettings.json", None, 404,
     "not-found"),
    ("docs-static-traversal", "GET", "/api/docs/static/..%2F..%2Fsettings.py", None, 404,
     "not-found"),
    ("docs-static-unknown", "GET", "/api/docs/static/banana.js", None, 404, "not-found"),
    ("health-post", "POST", "/api/v1/health", b"{}", 405, "not-supported"),
    ("ready-delete", "DELETE", "/api/v1/ready", None, 405, "not-supported"),
    ("api-unknown", "GET", "/api/v1/banana", None, 404, "not-found"),
    ("token-unknown-grant", "POST", "/auth/token", {"grant_type": "banana"}, 400,
     "unsupported_grant_type"),
    ("token-no-grant", "POST", "/auth/token", {}, 400, "invalid_request"),
    ("token-bad-code", "POST", "/auth/token",
     {"grant_type": "authorization_code", "code": "x" * 10_000, "client_id": "nobody",
      "redirect_uri": "http://x"}, 400, "invalid_client"),
    ("token-nul-client", "POST", "/auth/token",
     {"grant_type": "client_credentials", "client_id": "a\x00b"}, 400, "invalid_request"),
    ("token-json-body", "POST", "/auth/token", b'{"grant_type":"client_credentials"}', 400,
     "invalid_request"),
    ("introspect-anonymous", "POST", "/auth/introspect", {"token": "x"}, 401,
     "invalid_client"),
    ("revoke-anonymous", "POST", "/auth/revoke", {"token": "x"}, 401, "invalid_client"),
    ("register-not-json", "POST", "/auth/register", b"\xff\xfe", 400, "invalid_request"),
    ("register-deep", "POST", "/auth/register", b"[" * 5000 + b"]" * 5000, 400,
     "invalid_request"),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "status", "code"),
                         [pytest.param(*r, id=r[0]) for r in ROOT])
def test_hostile_root_request_is_refused(root: httpx.Client, stored: Callable[[], int],
                                         name: str, method: str, path: str,
                                         body: dict[str, str] | bytes | None, status: int,
                                         code: str) -> None:
    before = stored()
    if isinstance(body, dict):
        response = root.request(method, path, data=body)
    else:
        response = root.request(method, path, content=body,
                                headers={"Content-Type": "application/json"} if body else {})
    assert response.status_code == status, response.text[:300]
    if path.startswith("/auth/"):
        assert response.json()["error"] == code
    else:
        assert outcome_code(response.content) == code
    assert stored() == before


@pytest.fixture(scope="module")
def smart(database_url: str) -> Iterator[Smart]:
    yield from start_smart(database_url)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/SearchParameter"),
    ("PUT", "/SearchParameter/hostile-sp"),
    ("POST", "/$reindex"),
    ("POST", "/Patient/$reindex"),
])
def test_non_operator_may_not_define_search_parameters_or_reindex(
        smart: Smart, stored: Callable[[], int], method: str, path: str) -> None:
    body = orjson.loads(_parameter("hostile-sp", "Patient.name"))
    body["id"] = "hostile-sp"
    scope = "user/*.cruds system/Patient.rs system/SearchParameter.cruds"
    with smart.client(smart.token(scope)) as c:
        before = stored()
        response = c.request(method, path, content=orjson.dumps(body), headers=HEADERS)
    assert response.status_code == 403, response.text[:300]
    assert outcome_code(response.content) == "forbidden"
    assert stored() == before
