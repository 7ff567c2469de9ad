"""Changing a SearchParameter reconfigures what every write of its base types does, so
it needs an operator (``system/*.*``): create, update, patch and delete, plain and
conditional, over HTTP and as Bundle entries, are 403 ``forbidden`` for everyone else
and store nothing. Reading them does not."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import run_token
from tests.integration.auth.conftest import FHIR_JSON, Smart, outcome_code, put

pytestmark = pytest.mark.xdist_group("auth-search-parameters")

T = run_token()
KNOWN = f"sp-known-{T}"
URL = f"http://example.org/sp/{T}"
#: scopes granting every permission on SearchParameter, but not the admin scope
NOT_ADMIN = ["system/SearchParameter.cruds", "user/*.*", "system/*.rs system/*.cud"]


def search_parameter(sid: str | None, code: str, url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "SearchParameter", "url": url, "name": "Nickname",
        "status": "active", "description": "a test parameter", "code": code,
        "base": ["Patient"], "type": "string", "expression": "Patient.name.given"}
    if sid is not None:
        body["id"] = sid
    return body


@pytest.fixture(scope="module")
def known(smart: Smart, system_client: httpx.Client) -> Smart:
    put(system_client, search_parameter(KNOWN, f"nick-{T}", f"{URL}/known"))
    return smart


def send(smart: Smart, token: str, method: str, path: str, body: Any = None,
         media: str = FHIR_JSON) -> httpx.Response:
    headers = {"Accept": FHIR_JSON, "Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = media
    return httpx.request(method, f"{smart.base}/{path}", json=body, headers=headers,
                         timeout=30)


def stored(system_client: httpx.Client) -> list[tuple[str, str]]:
    """Every SearchParameter of this module: (id, versionId)."""
    found = system_client.get("SearchParameter", params={"url:below": URL, "_count": "100"})
    assert found.status_code == 200, found.text
    return sorted((e["resource"]["id"], e["resource"]["meta"]["versionId"])
                  for e in found.json().get("entry", []))


NEW = search_parameter(None, f"new-{T}", f"{URL}/new")
CHANGED = {**search_parameter(KNOWN, f"nick-{T}", f"{URL}/known"), "description": "changed"}
JSON_PATCH = [{"op": "replace", "path": "/description", "value": "patched"}]
CHANGES: list[tuple[str, str, Any, str]] = [
    ("POST", "SearchParameter", NEW, FHIR_JSON),
    ("PUT", f"SearchParameter/sp-new-{T}", {**NEW, "id": f"sp-new-{T}"}, FHIR_JSON),
    ("PUT", f"SearchParameter?url={URL}/known", CHANGED, FHIR_JSON),
    ("PUT", f"SearchParameter/{KNOWN}", CHANGED, FHIR_JSON),
    ("PATCH", f"SearchParameter/{KNOWN}", JSON_PATCH, "application/json-patch+json"),
    ("PATCH", f"SearchParameter?url={URL}/known", JSON_PATCH, "application/json-patch+json"),
    ("DELETE", f"SearchParameter/{KNOWN}", None, FHIR_JSON),
    ("DELETE", f"SearchParameter?url={URL}/known", None, FHIR_JSON),
]


@pytest.mark.parametrize("scope", NOT_ADMIN)
@pytest.mark.parametrize(("method", "path", "body", "media"), CHANGES)
def test_changes_without_the_admin_scope_are_403(known: Smart, system_client: httpx.Client,
                                                 scope: str, method: str, path: str,
                                                 body: Any, media: str) -> None:
    before = stored(system_client)
    answer = send(known, known.token(scope), method, path, body, media)
    assert answer.status_code == 403, answer.text
    assert outcome_code(answer) == "forbidden"
    assert answer.json()["issue"][0]["diagnostics"].endswith(
        "of a SearchParameter needs the admin scope (system/*.*)")
    assert stored(system_client) == before == [(KNOWN, "1")]


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_bundle_entries_without_the_admin_scope_are_403(
        known: Smart, system_client: httpx.Client, kind: str) -> None:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": [
        {"request": {"method": "POST", "url": "SearchParameter"}, "resource": NEW},
        {"request": {"method": "DELETE", "url": f"SearchParameter/{KNOWN}"}}]}
    answer = send(known, known.token("system/SearchParameter.cruds"), "POST", "", bundle)
    if kind == "transaction":
        assert answer.status_code == 403, answer.text
        assert outcome_code(answer) == "forbidden"
    else:
        assert answer.status_code == 200, answer.text
        responses = [e["response"] for e in answer.json()["entry"]]
        assert [r["status"] for r in responses] == ["403 Forbidden"] * 2
        assert [r["outcome"]["issue"][0]["code"] for r in responses] == ["forbidden"] * 2
    assert stored(system_client) == [(KNOWN, "1")]


def test_reading_needs_no_admin_scope(known: Smart) -> None:
    token = known.token("system/SearchParameter.rs")
    assert send(known, token, "GET", f"SearchParameter/{KNOWN}").status_code == 200
    assert send(known, token, "GET", "SearchParameter",
                None).status_code == 200


def test_the_admin_scope_creates_and_deletes(known: Smart,
                                             system_client: httpx.Client) -> None:
    token = known.token("system/*.*")
    sid = f"sp-admin-{T}"
    body = search_parameter(sid, f"adm-{T}", f"{URL}/admin")
    assert send(known, token, "PUT", f"SearchParameter/{sid}", body).status_code == 201
    assert (sid, "1") in stored(system_client)
    assert send(known, token, "DELETE", f"SearchParameter/{sid}").status_code == 204
    assert stored(system_client) == [(KNOWN, "1")]
