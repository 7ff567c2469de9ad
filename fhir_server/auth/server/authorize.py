"""The authorization endpoint: login, patient picker, consent, then the redirect.

Every step is a request to ``/auth/authorize`` carrying the client's original
parameters (hidden fields once the pages take over), validated again by authlib each
time: the client, its redirect URI, the scopes it may have, PKCE, the ``aud``. Forms
are POSTed with a CSRF token; the login lasts as a signed session cookie.
"""

from __future__ import annotations

from dataclasses import dataclass

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error

from fhir_server.auth.server import pages
from fhir_server.auth.server.hashing import check_password
from fhir_server.auth.server.oauth import Incoming, Outgoing, SmartRequest, SmartServer
from fhir_server.auth.server.session import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Signer,
    new_browser_id,
)
from fhir_server.auth.server.store import UserRow
from fhir_server.auth.tokens import same_url

#: the client's parameters carried through the pages
OAUTH_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "aud",
                "code_challenge", "code_challenge_method", "nonce", "launch", "prompt")
PAGE_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    ("X-Frame-Options", "DENY"), ("Cache-Control", "no-store"), ("Pragma", "no-cache"),
    ("Referrer-Policy", "no-referrer"), ("X-Content-Type-Options", "nosniff"),
]


@dataclass
class _Context:
    patient: str | None = None
    encounter: str | None = None
    picked: bool = False


def _cookie(name: str, value: str, secure: bool, max_age: int) -> tuple[str, str]:
    flags = "; Secure" if secure else ""
    return ("Set-Cookie", f"{name}={value}; Path=/auth; Max-Age={max_age}; HttpOnly; "
                          f"SameSite=Lax{flags}")


def _html(status: int, body: str, cookies: list[tuple[str, str]]) -> Outgoing:
    return Outgoing(status, body.encode(), [*PAGE_HEADERS, *cookies],
                    "text/html; charset=utf-8")


def _user(server: SmartServer, username: str | None) -> UserRow | None:
    if not username:
        return None
    user = server.store.user(username)
    return user if user is not None and not user.disabled else None


def authorize(server: SmartServer, signer: Signer, incoming: Incoming,
              cookies: dict[str, str]) -> Outgoing:
    """One request to the authorization endpoint, GET or POST."""
    secure = incoming.url.startswith("https:")
    set_cookies: list[tuple[str, str]] = []
    browser = cookies.get(CSRF_COOKIE) or ""
    if not browser:
        browser = new_browser_id()
        set_cookies.append(_cookie(CSRF_COOKIE, browser, secure, SESSION_SECONDS))
    request = SmartRequest(incoming)
    form = request.form if incoming.method == "POST" else {}
    action = form.get("action")
    if action and not signer.check_csrf(cookies.get(CSRF_COOKIE), form.get("csrf_token")):
        return _html(400, pages.error_page(
            "Form expired", "This form is no longer valid. Go back to the app and start "
                            "again."), set_cookies)
    session = signer.session(cookies.get(SESSION_COOKIE))
    user = _user(server, session.username if session else None)
    try:
        grant = server.get_consent_grant(request, end_user=user)
        context = _launch_context(server, request, grant.redirect_uri, user)
    except OAuth2Error as error:
        if error.redirect_uri:
            answer = server.handle_error_response(request, error)
            answer.headers += set_cookies
            return answer  # type: ignore[no-any-return]
        return _html(400, pages.error_page("Cannot authorize", error.get_error_description()
                                           or error.error), set_cookies)
    client = request.client
    params = [(k, v) for k in OAUTH_PARAMS if (v := request.payload.data.get(k))]
    csrf = signer.csrf_token(browser)
    name = client.row.name
    if action == "login":
        found = server.store.user(form.get("username", ""))
        if not check_password(form.get("password", ""), found.password_hash if found else None
                              ) or found is None or found.disabled:
            return _html(200, pages.login_page(params, csrf, name, "Wrong user name or "
                                               "password."), set_cookies)
        user = found
        set_cookies.append(_cookie(SESSION_COOKIE, signer.session_cookie(user.username),
                                   secure, SESSION_SECONDS))
        context = _launch_context(server, request, grant.redirect_uri, user)
    if user is None:
        return _html(200, pages.login_page(params, csrf, name), set_cookies)
    scopes = (request.scope or "").split()
    needs_patient = "launch/patient" in scopes or any(s.startswith("patient/") for s in scopes)
    if needs_patient and context.patient is None:
        return _html(200, pages.picker_page(
            params, csrf, name, server.store.patients(request.args.get("patient_search", "")),
            request.args.get("patient_search", "")), set_cookies)
    if context.picked:
        params.append(("patient", context.patient or ""))
    if action == "consent":
        request.user = user
        request.launch = (context.patient, context.encounter)
        granted = user if form.get("decision") == "allow" else None
        answer = server.create_authorization_response(request, grant_user=granted,
                                                      grant=grant)
        answer.headers += set_cookies
        return answer  # type: ignore[no-any-return]
    return _html(200, pages.consent_page(params, csrf, name, user.username, scopes,
                                         context.patient), set_cookies)


def _launch_context(server: SmartServer, request: SmartRequest, redirect_uri: str,
                    user: UserRow | None) -> _Context:
    """The ``aud`` checked, and the patient and encounter of the launch: the EHR's
    launch context, the user's own Patient record, or the picker's choice."""
    data = request.payload.data
    state = data.get("state")
    aud = data.get("aud")
    if not aud or not same_url(aud, request.incoming.base):
        raise InvalidRequestError(
            f"aud must be this server's FHIR base ({request.incoming.base})",
            redirect_uri=redirect_uri, state=state)
    if launch := data.get("launch"):
        found = server.store.launch(launch)
        if found is None:
            raise InvalidRequestError("the launch is unknown or has expired",
                                      redirect_uri=redirect_uri, state=state)
        return _Context(found[0], found[1])
    if user is not None and user.fhir_user and user.fhir_user.startswith("Patient/"):
        return _Context(user.fhir_user.removeprefix("Patient/"))
    picked = data.get("patient")
    if picked and server.store.patient_exists(picked):
        return _Context(picked, picked=True)
    return _Context()
