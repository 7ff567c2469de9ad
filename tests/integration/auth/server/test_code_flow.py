"""Authorization code + PKCE through the pages: login, patient picker, consent; the
token response, the id_token, and the refusals (PKCE, state, redirect URI, aud, CSRF)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

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

pytestmark = pytest.mark.xdist_group("auth-server-code")
SCOPE = "openid fhirUser launch/patient patient/*.rs offline_access"


@pytest.fixture(scope="module")
def patient_id(smart: Smart, system_client: httpx.Client) -> str:
    pid = f"p-{uuid.uuid4().hex[:12]}"
    put(system_client, {"resourceType": "Patient", "id": pid,
                        "name": [{"family": "Zebedee", "given": ["Ada"]}]})
    return pid


@pytest.fixture(scope="module")
def public_app(store: Store) -> App:
    return add_client(store, "public", SCOPE + " online_access launch launch/encounter")


def _through_pages(browser: Browser, smart: Smart, app: App, username: str, patient: str,
                   challenge: str | None, scope: str = SCOPE, **more: str
                   ) -> tuple[dict[str, str], dict[str, str]]:
    params = code_request(smart, app, scope, challenge, **more)
    page = browser.start(**params)
    assert page.status_code == 200 and page_kind(page.text) == "login", page.text
    page = browser.login(page, username)
    assert page_kind(page.text) == "pick", page.text
    page = browser.pick(page, patient)
    assert page_kind(page.text) == "consent", page.text
    assert "patient/*.rs" in page.text and "Allow" in page.text
    return params, redirect_params(browser.consent(page))


def test_code_pkce_flow_gives_patient_scope_and_id_token(
        smart: Smart, store: Store, browser: Browser, public_app: App,
        patient_id: str) -> None:
    user = add_user(store, "Practitioner/p1")
    verifier, challenge = pkce()
    params, back = _through_pages(browser, smart, public_app, user, patient_id, challenge,
                                  nonce="n-123")
    assert back["state"] == params["state"] and back["code"]
    answer = token_request(smart, {"grant_type": "authorization_code", "code": back["code"],
                                   "redirect_uri": REDIRECT, "client_id": public_app.client_id,
                                   "code_verifier": verifier})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    token = answer.json()
    assert token["token_type"] == "Bearer" and token["patient"] == patient_id
    assert token["need_patient_banner"] is True
    assert set(token["scope"].split()) == set(SCOPE.split())
    assert token["refresh_token"] and token["expires_in"] > 0
    jwks = KeySet.import_key_set(httpx.get(f"{smart.root}/auth/jwks").json())
    id_token = jwt.decode(token["id_token"], jwks).claims
    assert id_token["aud"] == [public_app.client_id] and id_token["nonce"] == "n-123"
    assert id_token["fhirUser"] == "Practitioner/p1" and id_token["sub"] == user
    assert id_token["iss"] == smart.root
    access = jwt.decode(token["access_token"], jwks).claims
    assert access["aud"] == smart.base and access["patient"] == patient_id
    assert access["fhirUser"] == "Practitioner/p1" and access["sub"] == user
    with smart.client(token["access_token"]) as fhir:
        read = fhir.get(f"Patient/{patient_id}")
        assert read.status_code == 200, read.text


def test_wrong_verifier_is_refused_and_burns_the_code(
        smart: Smart, store: Store, browser: Browser, public_app: App,
        patient_id: str) -> None:
    verifier, challenge = pkce()
    _, back = _through_pages(browser, smart, public_app, add_user(store), patient_id,
                             challenge)
    data = {"grant_type": "authorization_code", "code": back["code"],
            "redirect_uri": REDIRECT, "client_id": public_app.client_id}
    wrong = token_request(smart, {**data, "code_verifier": pkce()[0]})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    missing = token_request(smart, data)
    assert missing.status_code == 400
    again = token_request(smart, {**data, "code_verifier": verifier})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_code_is_single_use_and_reuse_revokes_what_it_gave(
        smart: Smart, store: Store, browser: Browser, public_app: App,
        patient_id: str) -> None:
    verifier, challenge = pkce()
    _, back = _through_pages(browser, smart, public_app, add_user(store), patient_id,
                             challenge)
    data = {"grant_type": "authorization_code", "code": back["code"], "code_verifier": verifier,
            "redirect_uri": REDIRECT, "client_id": public_app.client_id}
    first = token_request(smart, data)
    assert first.status_code == 200, first.text
    second = token_request(smart, data)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    with smart.client(first.json()["access_token"]) as fhir:
        assert fhir.get(f"Patient/{patient_id}").status_code == 401
    refused = token_request(smart, {"grant_type": "refresh_token", "client_id":
                                    public_app.client_id,
                                    "refresh_token": first.json()["refresh_token"]})
    assert refused.status_code == 400


def test_public_client_needs_s256(smart: Smart, browser: Browser, public_app: App) -> None:
    back = redirect_params(browser.start(**code_request(smart, public_app, SCOPE, None)))
    assert back["error"] == "invalid_request" and "PKCE" in back["error_description"]
    plain = code_request(smart, public_app, SCOPE, None, code_challenge="a" * 43,
                         code_challenge_method="plain")
    back = redirect_params(browser.start(**plain))
    assert back["error"] == "invalid_request" and back["state"] == plain["state"]


def test_bad_redirect_uri_is_an_error_page_not_a_redirect(
        smart: Smart, browser: Browser, public_app: App) -> None:
    params = code_request(smart, public_app, SCOPE, pkce()[1])
    params["redirect_uri"] = "https://evil.example/cb"
    page = browser.start(**params)
    assert page.status_code == 400 and "location" not in page.headers
    assert page.headers["x-frame-options"] == "DENY"
    unknown = browser.start(**{**params, "client_id": "nobody", "redirect_uri": REDIRECT})
    assert unknown.status_code == 400 and "location" not in unknown.headers


def test_aud_must_be_this_server(smart: Smart, browser: Browser, public_app: App) -> None:
    params = code_request(smart, public_app, SCOPE, pkce()[1], aud="https://other.example/fhir")
    back = redirect_params(browser.start(**params))
    assert back["error"] == "invalid_request" and back["state"] == params["state"]
    loopback = code_request(smart, public_app, SCOPE, pkce()[1],
                            aud=smart.base.replace("127.0.0.1", "localhost"))
    assert browser.start(**loopback).status_code == 200


def test_deny_redirects_access_denied_with_state(
        smart: Smart, store: Store, browser: Browser, public_app: App,
        patient_id: str) -> None:
    params = code_request(smart, public_app, "openid fhirUser", pkce()[1])
    page = browser.login(browser.start(**params), add_user(store))
    assert page_kind(page.text) == "consent"
    back = redirect_params(browser.consent(page, allow=False))
    assert back == {"error": "access_denied", "state": params["state"],
                    "error_description": back.get("error_description", "")} or (
        back["error"] == "access_denied" and back["state"] == params["state"])


def test_pages_are_protected(smart: Smart, store: Store, browser: Browser,
                             public_app: App) -> None:
    params = code_request(smart, public_app, "openid", pkce()[1])
    page = browser.start(**params)
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert 'name="viewport"' in page.text and '<label for="username">' in page.text
    forged = browser.submit(page, csrf_token="forged", username=add_user(store),
                            password="correct horse")
    assert forged.status_code == 400 and "session" not in forged.headers.get("set-cookie", "")
    wrong = browser.login(page, add_user(store), password="wrong password")
    assert wrong.status_code == 200 and "Wrong user name or password" in wrong.text
    css = httpx.get(f"{smart.root}/auth/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_logged_in_user_goes_straight_to_consent(
        smart: Smart, store: Store, browser: Browser, public_app: App) -> None:
    user = add_user(store, "Patient/self-1")
    params = code_request(smart, public_app, "openid launch/patient patient/*.rs",
                          pkce()[1])
    page = browser.login(browser.start(**params), user)
    assert page_kind(page.text) == "consent"  # a Patient user is the patient: no picker
    again = browser.start(**code_request(smart, public_app, "openid", pkce()[1]))
    assert page_kind(again.text) == "consent"


def test_confidential_client_secret_basic_and_post(
        smart: Smart, store: Store, browser: Browser, patient_id: str) -> None:
    app = add_client(store, "confidential", "openid launch/patient patient/*.rs")
    assert app.secret
    codes = []
    for _ in range(3):
        params = code_request(smart, app, "openid launch/patient patient/*.rs", None)
        page = browser.start(**params)
        if page_kind(page.text) == "login":
            page = browser.login(page, add_user(store))
        page = browser.pick(page, patient_id)
        codes.append(redirect_params(browser.consent(page))["code"])
    data = {"grant_type": "authorization_code", "redirect_uri": REDIRECT}
    basic = token_request(smart, {**data, "code": codes[0]}, auth=(app.client_id, app.secret))
    assert basic.status_code == 200, basic.text
    assert basic.json()["patient"] == patient_id and "refresh_token" not in basic.json()
    post = token_request(smart, {**data, "code": codes[1], "client_id": app.client_id,
                                 "client_secret": app.secret})
    assert post.status_code == 200, post.text
    wrong = token_request(smart, {**data, "code": codes[2]}, auth=(app.client_id, "nope"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    none = token_request(smart, {**data, "code": codes[2], "client_id": app.client_id})
    assert none.status_code in (400, 401) and none.json()["error"] == "invalid_client"
