"""Refresh tokens (rotation, reuse detection revoking the family and its access tokens,
only with offline_access/online_access) and the EHR launch context."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest

from fhir_server.auth.server.store import Store
from tests.integration.auth.conftest import Smart, put
from tests.integration.auth.server.conftest import (
    REDIRECT,
    App,
    Browser,
    add_client,
    add_user,
    code_request,
    page_kind,
    pkce,
    redirect_params,
    token_request,
)

pytestmark = pytest.mark.xdist_group("auth-server-refresh")
SCOPE = "openid fhirUser launch launch/patient launch/encounter patient/*.rs user/*.rs"


@pytest.fixture(scope="module")
def patient_id(smart: Smart, system_client: httpx.Client) -> str:
    pid = f"r-{uuid.uuid4().hex[:12]}"
    put(system_client, {"resourceType": "Patient", "id": pid,
                        "name": [{"family": "Quist", "given": ["Rene"]}]})
    return pid


@pytest.fixture(scope="module")
def app(store: Store) -> App:
    return add_client(store, "public", SCOPE + " offline_access online_access")


def _tokens(smart: Smart, store: Store, browser: Browser, app: App, scope: str,
            patient: str | None = None, **more: str) -> dict[str, str]:
    verifier, challenge = pkce()
    page = browser.start(**code_request(smart, app, scope, challenge, **more))
    if page_kind(page.text) == "login":
        page = browser.login(page, add_user(store, "Practitioner/p9"))
    if page_kind(page.text) == "pick":
        assert patient is not None
        page = browser.pick(page, patient)
    assert page_kind(page.text) == "consent", page.text
    code = redirect_params(browser.consent(page))["code"]
    answer = token_request(smart, {"grant_type": "authorization_code", "code": code,
                                   "code_verifier": verifier, "redirect_uri": REDIRECT,
                                   "client_id": app.client_id})
    assert answer.status_code == 200, answer.text
    token: dict[str, str] = answer.json()
    return token


def _refresh(smart: Smart, app: App, refresh_token: str, **more: str) -> httpx.Response:
    return token_request(smart, {"grant_type": "refresh_token", "refresh_token": refresh_token,
                                 "client_id": app.client_id, **more})


def _revoked(database_url: str, jti_of: list[str]) -> bool:
    from joserfc import jws

    jtis = [jws.extract_compact(t.encode()).payload for t in jti_of]
    import orjson

    ids = [orjson.loads(p)["jti"] for p in jtis]
    with psycopg.connect(database_url) as conn:
        found = conn.execute("SELECT count(*) FROM auth_revoked_token WHERE jti = ANY(%s)",
                             (ids,)).fetchone()
    return found is not None and found[0] == len(ids)


def test_refresh_rotates_and_reuse_revokes_the_family(
        smart: Smart, store: Store, browser: Browser, app: App, patient_id: str) -> None:
    first = _tokens(smart, store, browser, app, "openid patient/*.rs launch/patient "
                    "offline_access", patient_id)
    assert first["refresh_token"]
    second = _refresh(smart, app, first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["patient"] == patient_id and "offline_access" in rotated["scope"]
    narrowed = _refresh(smart, app, rotated["refresh_token"], scope="patient/*.rs")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "patient/*.rs"
    latest = narrowed.json()
    with smart.client(latest["access_token"]) as fhir:
        assert fhir.get(f"Patient/{patient_id}").status_code == 200
    # the first refresh token comes back: stolen; everything of the family is revoked
    reuse = _refresh(smart, app, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert _refresh(smart, app, latest["refresh_token"]).status_code == 400
    assert _revoked(smart.database_url, [first["access_token"], rotated["access_token"],
                                         latest["access_token"]])
    with smart.client(latest["access_token"]) as fhir:
        assert fhir.get(f"Patient/{patient_id}").status_code == 401


def test_no_refresh_token_without_offline_or_online_access(
        smart: Smart, store: Store, browser: Browser, app: App, patient_id: str) -> None:
    token = _tokens(smart, store, browser, app, "openid patient/*.rs", patient_id)
    assert "refresh_token" not in token
    online = _tokens(smart, store, browser, app, "user/*.rs online_access")
    assert online["refresh_token"] and "patient" not in online


def test_refresh_scope_cannot_grow(smart: Smart, store: Store, browser: Browser, app: App,
                                   patient_id: str) -> None:
    token = _tokens(smart, store, browser, app, "patient/*.rs offline_access", patient_id)
    wider = _refresh(smart, app, token["refresh_token"], scope="patient/*.rs user/*.rs")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    other = add_client(store, "public", "offline_access patient/*.rs")
    stolen = _refresh(smart, other, token["refresh_token"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"


def test_ehr_launch_gives_patient_and_encounter(
        smart: Smart, store: Store, browser: Browser, app: App, patient_id: str) -> None:
    launch_url = f"{smart.root}/auth/launch"
    body = {"patient": patient_id, "encounter": "enc-1"}
    assert httpx.post(launch_url, json=body).status_code == 401
    weak = {"Authorization": f"Bearer {smart.token('system/Patient.rs')}"}
    assert httpx.post(launch_url, json=body, headers=weak).status_code == 401
    admin = {"Authorization": f"Bearer {smart.token('system/*.*')}"}
    missing = httpx.post(launch_url, json={"patient": "no-such"}, headers=admin)
    assert missing.status_code == 400, missing.text
    assert missing.json()["error"] == "invalid_request"
    assert httpx.post(launch_url, content=b"[", headers=admin).status_code == 400
    made = httpx.post(launch_url, json=body, headers=admin)
    assert made.status_code == 201, made.text
    launch = made.json()
    assert launch["expires_in"] > 0
    token = _tokens(smart, store, browser, app, "launch openid patient/*.rs",
                    launch=launch["launch"])
    assert token["patient"] == patient_id and token["encounter"] == "enc-1"
    bad = code_request(smart, app, "launch patient/*.rs", pkce()[1], launch="forged")
    back = redirect_params(browser.start(**bad))
    assert back["error"] == "invalid_request" and back["state"] == bad["state"]
