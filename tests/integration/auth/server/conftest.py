"""Pieces of the authorization-server tests: registered clients and users in the SMART
server's database, PKCE, and a cookie-keeping "browser" that fills in the pages."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from fhir_server.auth.server.hashing import hash_password, new_token, token_hash
from fhir_server.auth.server.store import Store
from tests.integration.auth.conftest import Smart

REDIRECT = "http://localhost:9999/callback"


@pytest.fixture(scope="module")
def store(smart: Smart) -> Iterator[Store]:
    """The authorization server's tables of the module's server."""
    s = Store.connect(smart.database_url, max_size=2)
    s.pool.wait(10)
    try:
        yield s
    finally:
        s.close()


@dataclass
class App:
    client_id: str
    secret: str | None = None


def add_client(store: Store, kind: str, scope: str, redirect_uris: list[str] | None = None,
               jwks: dict[str, Any] | None = None, jwks_uri: str | None = None) -> App:
    secret = new_token() if kind == "confidential" else None
    client_id = store.add_client(
        name=f"{kind} app", kind=kind, secret_hash=token_hash(secret) if secret else None,
        redirect_uris=[REDIRECT] if redirect_uris is None and kind != "backend"
        else (redirect_uris or []), scope=scope, jwks=jwks, jwks_uri=jwks_uri)
    return App(client_id, secret)


def add_user(store: Store, fhir_user: str | None = "Practitioner/p1",
             password: str = "correct horse") -> str:
    username = f"user-{secrets.token_hex(4)}"
    store.add_user(username, hash_password(password), fhir_user)
    return username


def pkce() -> tuple[str, str]:
    """A code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"method": a.get("method", "get"), "fields": [],
                               "radios": []})
        elif tag == "input" and self.forms:
            if a.get("type") == "radio":
                self.forms[-1]["radios"].append((a["name"], a["value"]))
            elif a.get("type") == "hidden":
                self.forms[-1]["fields"].append((a["name"], a.get("value", "")))


def post_form(html: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The hidden fields and radio choices of the page's POST form."""
    parser = _Forms()
    parser.feed(html)
    form = next(f for f in parser.forms if f["method"] == "post")
    return form["fields"], form["radios"]


def page_kind(html: str) -> str:
    """login, pick, consent (the POST form's action field), or error."""
    try:
        fields, _ = post_form(html)
    except StopIteration:
        return "error"
    return dict(fields).get("action", "?")


class Browser:
    """A user agent for the authorization pages (cookies kept, no redirects followed)."""

    def __init__(self, smart: Smart) -> None:
        self.smart = smart
        self.http = httpx.Client(base_url=smart.root, timeout=30, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def start(self, **params: str) -> httpx.Response:
        return self.http.get("/auth/authorize", params=params)

    def submit(self, page: httpx.Response, **more: str) -> httpx.Response:
        fields, _ = post_form(page.text)
        data = [*[(k, v) for k, v in fields if k not in more], *more.items()]
        return self.http.post("/auth/authorize", content=urlencode(data), headers={
            "Content-Type": "application/x-www-form-urlencoded"})

    def login(self, page: httpx.Response, username: str, password: str = "correct horse"
              ) -> httpx.Response:
        return self.submit(page, username=username, password=password)

    def pick(self, page: httpx.Response, patient: str) -> httpx.Response:
        _, radios = post_form(page.text)
        assert ("patient", patient) in radios, radios
        return self.submit(page, patient=patient)

    def consent(self, page: httpx.Response, allow: bool = True) -> httpx.Response:
        return self.submit(page, decision="allow" if allow else "deny")


def redirect_params(answer: httpx.Response) -> dict[str, str]:
    """The query parameters of a redirect to the client."""
    assert answer.status_code == 302, (answer.status_code, answer.text[:500])
    location = answer.headers["location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
def browser(smart: Smart) -> Iterator[Browser]:
    b = Browser(smart)
    try:
        yield b
    finally:
        b.close()


def code_request(smart: Smart, app: App, scope: str, challenge: str | None,
                 **more: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
              "scope": scope, "state": secrets.token_urlsafe(8), "aud": smart.base, **more}
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return params


def token_request(smart: Smart, data: dict[str, str], auth: tuple[str, str] | None = None
                  ) -> httpx.Response:
    return httpx.post(f"{smart.root}/auth/token", data=data, auth=auth, timeout=30)
