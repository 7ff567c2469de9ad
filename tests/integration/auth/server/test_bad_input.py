"""Malformed requests get OAuth errors (or an error page), never a 500."""

from __future__ import annotations

import httpx
import pytest

from fhir_server.auth.server.store import Store
from tests.integration.auth.conftest import Smart
from tests.integration.auth.server.conftest import REDIRECT, add_client

pytestmark = pytest.mark.xdist_group("auth-server-code")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("body", [
    "", "grant_type=", "grant_type=authorization_code", "grant_type=authorization_code&code=x"
    "&client_id=nobody", "grant_type=refresh_token&client_id=nobody",
    "grant_type=client_credentials", "grant_type=client_credentials&client_assertion_type="
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=a.b.c",
    "grant_type=implicit", "%ff%fe=%00", "code=1&code=2&grant_type=authorization_code",
])
def test_token_endpoint(smart: Smart, body: str) -> None:
    answer = httpx.post(f"{smart.root}/auth/token", content=body.encode(), headers=FORM)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["error"]


def test_token_endpoint_wrong_media_and_size(smart: Smart) -> None:
    url = f"{smart.root}/auth/token"
    assert httpx.post(url, json={"grant_type": "x"}).json()["error"] == "invalid_request"
    big = httpx.post(url, content=b"a=" + b"b" * 70_000, headers=FORM)
    assert big.status_code == 413
    assert httpx.get(url).status_code == 405


@pytest.mark.parametrize("query", [
    "", "response_type=code", "response_type=token&client_id=x",
    "client_id=a&client_id=b&response_type=code", "response_type=code&client_id=%00",
])
def test_authorize_without_a_trusted_client(smart: Smart, query: str) -> None:
    answer = httpx.get(f"{smart.root}/auth/authorize?{query}")
    assert answer.status_code == 400 and "location" not in answer.headers
    if "%00" not in query:  # NUL characters are refused before any page
        assert answer.headers["content-type"].startswith("text/html")


def test_authorize_with_a_client_redirects_errors(smart: Smart, store: Store) -> None:
    app = add_client(store, "public", "openid")
    answer = httpx.get(f"{smart.root}/auth/authorize", params={
        "response_type": "token", "client_id": app.client_id, "redirect_uri": REDIRECT,
        "state": "s1"})
    assert answer.status_code == 302
    assert "error=unsupported_response_type" in answer.headers["location"]
    assert "state=s1" in answer.headers["location"]


def test_other_endpoints(smart: Smart) -> None:
    root = smart.root
    assert httpx.post(f"{root}/auth/introspect", data={"token": "x"}).status_code == 401
    assert httpx.post(f"{root}/auth/revoke", data={}).status_code in (400, 401)
    admin = {"Authorization": f"Bearer {smart.token('system/*.*')}"}
    assert httpx.post(f"{root}/auth/register", json=[1], headers=admin).status_code == 400
    assert httpx.post(f"{root}/auth/register", json={}, headers=admin).status_code == 400
    assert httpx.post(f"{root}/auth/launch", json={"patient": 5},
                      headers=admin).status_code == 400
    assert httpx.post(f"{root}/auth/launch", json={}, headers={
        "Authorization": "Bearer not.a.token"}).status_code == 401
