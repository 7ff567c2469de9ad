"""Password and credential hashes; the session cookie and CSRF tokens."""

from __future__ import annotations

import time

from fhir_server.auth.server import session as session_module
from fhir_server.auth.server.hashing import (
    check_password,
    check_token,
    hash_password,
    new_token,
    token_hash,
)
from fhir_server.auth.server.session import Signer


def test_password_hash_is_salted_and_checks() -> None:
    first, second = hash_password("pa55word!"), hash_password("pa55word!")
    assert first != second and first.startswith("scrypt$32768$8$1$")
    assert check_password("pa55word!", first) and check_password("pa55word!", second)
    assert not check_password("pa55word", first)
    assert not check_password("anything", None)  # unknown user: the dummy hash, False
    assert not check_password("x", "plain$text") and not check_password("x", "scrypt$bad")


def test_token_hash() -> None:
    value = new_token()
    assert len(value) >= 43 and value != new_token()
    assert check_token(value, token_hash(value)) and not check_token(value + "x",
                                                                      token_hash(value))
    assert not check_token(value, None)


def test_session_cookie_signed_and_expiring(monkeypatch: object) -> None:
    signer = Signer(b"k" * 32)
    cookie = signer.session_cookie("alice")
    found = signer.session(cookie)
    assert found is not None and found.username == "alice"
    body, _, mac = cookie.rpartition(".")
    assert signer.session(body + "." + mac[:-2] + "AA") is None
    assert signer.session(body[:-2] + "." + mac) is None
    assert Signer(b"o" * 32).session(cookie) is None
    assert signer.session(None) is None and signer.session("garbage") is None
    old = signer.session_cookie("bob", now=int(time.time()) -
                                session_module.SESSION_SECONDS - 1)
    assert signer.session(old) is None


def test_csrf_token_bound_to_browser() -> None:
    signer = Signer(b"k" * 32)
    token = signer.csrf_token("browser-1")
    assert signer.check_csrf("browser-1", token)
    assert not signer.check_csrf("browser-2", token)
    assert not signer.check_csrf(None, token) and not signer.check_csrf("browser-1", None)
    assert not signer.check_csrf("browser-1", "")
