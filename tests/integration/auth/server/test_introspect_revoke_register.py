"""Introspection (RFC 7662), revocation (RFC 7009) and dynamic registration (RFC 7591)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from joserfc.jwk import KeySet, RSAKey

from fhir_server.auth.server.store import Store
from tests.integration.auth.conftest import Smart, put, stranger_key
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
from tests.integration.auth.server.test_backend import assertion, request_token

pytestmark = pytest.mark.xdist_group("auth-server-introspect")


@pytest.fixture(scope="module")
def patient_id(smart: Smart, system_client: httpx.Client) -> str:
    pid = f"i-{uuid.uuid4().hex[:12]}"
    put(system_client, {"resourceType": "Patient", "id": pid})
    return pid


@pytest.fixture(scope="module")
def resource_server(store: Store) -> App:
    """A confidential client that introspects (as a resource server would)."""
    return add_client(store, "confidential", "openid")


def _user_tokens(smart: Smart, store: Store, patient: str) -> tuple[App, dict[str, str]]:
    app = add_client(store, "public", "openid fhirUser launch/patient patient/*.rs "
                                      "offline_access")
    browser = Browser(smart)
    try:
        verifier, challenge = pkce()
        page = browser.start(**code_request(smart, app, "fhirUser launch/patient "
                                            "patient/*.rs offline_access", challenge))
        page = browser.login(page, add_user(store, "Practitioner/intro"))
        page = browser.pick(page, patient)
        assert page_kind(page.text) == "consent"
        code = redirect_params(browser.consent(page))["code"]
    finally:
        browser.close()
    answer = token_request(smart, {"grant_type": "authorization_code", "code": code,
                                   "code_verifier": verifier, "redirect_uri": REDIRECT,
                                   "client_id": app.client_id})
    assert answer.status_code == 200, answer.text
    return app, answer.json()


def _introspect(smart: Smart, token: str, auth: tuple[str, str] | None = None,
                bearer: str | None = None, **more: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.post(f"{smart.root}/auth/introspect", data={"token": token, **more},
                      auth=auth, headers=headers)


def test_introspection(smart: Smart, store: Store, resource_server: App,
                       patient_id: str) -> None:
    _, tokens = _user_tokens(smart, store, patient_id)
    auth = (resource_server.client_id, resource_server.secret or "")
    active = _introspect(smart, tokens["access_token"], auth=auth)
    assert active.status_code == 200, active.text
    body = active.json()
    assert body["active"] is True and body["patient"] == patient_id
    assert body["fhirUser"] == "Practitioner/intro" and "patient/*.rs" in body["scope"]
    assert body["client_id"] and body["sub"] and body["exp"] > time.time()
    refresh = _introspect(smart, tokens["refresh_token"], auth=auth,
                          token_type_hint="refresh_token").json()
    assert refresh["active"] is True and refresh["patient"] == patient_id
    by_bearer = _introspect(smart, tokens["access_token"], bearer=smart.token("system/*.rs"))
    assert by_bearer.status_code == 200 and by_bearer.json()["active"] is True
    for unknown in ("nonsense", smart.token("user/*.rs", ttl=60)[:-4] + "AAAA",
                    smart.token("system/*.rs", ttl=-100)):
        assert _introspect(smart, unknown, auth=auth).json() == {"active": False}
    forged = stranger_key()
    from tests.integration.auth.conftest import claims_for, sign

    assert _introspect(smart, sign(claims_for(smart.base, "system/*.*"), forged),
                       auth=auth).json() == {"active": False}


def test_introspection_needs_a_trusted_caller(smart: Smart, store: Store,
                                              patient_id: str) -> None:
    app, tokens = _user_tokens(smart, store, patient_id)
    anonymous = _introspect(smart, tokens["access_token"])
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    public = _introspect(smart, tokens["access_token"], client_id=app.client_id)
    assert public.status_code in (400, 401)
    user_token = _introspect(smart, tokens["access_token"], bearer=tokens["access_token"])
    assert user_token.status_code in (400, 401)
    missing = httpx.post(f"{smart.root}/auth/introspect", data={},
                         headers={"Authorization": f"Bearer {smart.token('system/*.rs')}"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_revocation(smart: Smart, store: Store, resource_server: App,
                    patient_id: str) -> None:
    auth = (resource_server.client_id, resource_server.secret or "")
    app, tokens = _user_tokens(smart, store, patient_id)
    revoke = f"{smart.root}/auth/revoke"
    answer = httpx.post(revoke, data={"token": tokens["access_token"],
                                      "client_id": app.client_id})
    assert answer.status_code == 200, answer.text
    assert _introspect(smart, tokens["access_token"], auth=auth).json() == {"active": False}
    with smart.client(tokens["access_token"]) as fhir:
        assert fhir.get(f"Patient/{patient_id}").status_code == 401
    # a refresh token revokes its family (and the access tokens issued from it)
    app, tokens = _user_tokens(smart, store, patient_id)
    answer = httpx.post(revoke, data={"token": tokens["refresh_token"],
                                      "token_type_hint": "refresh_token",
                                      "client_id": app.client_id})
    assert answer.status_code == 200, answer.text
    assert _introspect(smart, tokens["refresh_token"], auth=auth).json() == {"active": False}
    assert _introspect(smart, tokens["access_token"], auth=auth).json() == {"active": False}
    again = token_request(smart, {"grant_type": "refresh_token", "client_id": app.client_id,
                                  "refresh_token": tokens["refresh_token"]})
    assert again.status_code == 400
    # unknown tokens: 200 all the same (RFC 7009 section 2.2)
    assert httpx.post(revoke, data={"token": "unknown", "client_id": app.client_id}
                      ).status_code == 200


def test_registration(smart: Smart) -> None:
    url = f"{smart.root}/auth/register"
    meta = {"client_name": "Registered", "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"], "response_types": ["code"],
            "scope": "openid patient/*.rs"}
    assert httpx.post(url, json=meta).status_code in (400, 401)
    weak = {"Authorization": f"Bearer {smart.token('system/Patient.rs')}"}
    assert httpx.post(url, json=meta, headers=weak).status_code in (400, 401, 403)
    admin = {"Authorization": f"Bearer {smart.token('system/*.*')}"}
    made = httpx.post(url, json=meta, headers=admin)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["client_id"] and body["client_secret"] and body["client_name"] == "Registered"
    public = httpx.post(url, json={**meta, "token_endpoint_auth_method": "none"},
                        headers=admin).json()
    assert public["client_id"] and "client_secret" not in public
    bad = httpx.post(url, json={"client_name": "x", "token_endpoint_auth_method": "none"},
                     headers=admin)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client_metadata"
    assert httpx.post(url, content=b"not json", headers=admin).status_code == 400
    # a backend client registered with its JWKS gets tokens at once
    key = RSAKey.generate_key(2048, parameters={"kid": "reg-1", "alg": "RS384"})
    backend = httpx.post(url, headers=admin, json={
        "client_name": "Backend", "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["client_credentials"], "scope": "system/Patient.rs",
        "jwks": KeySet([key]).as_dict(private=False)})
    assert backend.status_code == 201, backend.text
    client_id = backend.json()["client_id"]
    answer = request_token(smart, assertion(smart, client_id, key, "RS384"))
    assert answer.status_code == 200, answer.text
