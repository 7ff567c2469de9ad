"""The login session cookie and the CSRF tokens of the authorization pages.

The session is ``base64(json).signature`` with an HMAC-SHA256 key kept in the database
(``auth_secret``), so every worker accepts it; it names the user, the login time and its
expiry. Forms carry a CSRF token bound to a random per-browser cookie (signed double
submit): a page on another site can neither read the cookie nor forge the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson

SESSION_COOKIE = "fhir_auth_session"
CSRF_COOKIE = "fhir_auth_csrf"
#: a login lasts this long (seconds)
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Session:
    """A logged-in user."""

    username: str
    auth_time: int
    expires: int


class Signer:
    """Signs and checks session cookies and CSRF tokens with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, data: bytes) -> str:
        digest = hmac.new(self._key, purpose.encode() + b"\0" + data, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def session_cookie(self, username: str, now: int | None = None) -> str:
        """A cookie value for ``username`` logged in now."""
        now = int(time.time()) if now is None else now
        body = base64.urlsafe_b64encode(orjson.dumps(
            {"u": username, "t": now, "e": now + SESSION_SECONDS,
             "n": secrets.token_urlsafe(8)})).rstrip(b"=")
        return f"{body.decode()}.{self._mac('session', body)}"

    def session(self, cookie: str | None) -> Session | None:
        """The session of a cookie, if its signature holds and it has not expired."""
        if not cookie or "." not in cookie:
            return None
        body, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac("session", body.encode())):
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            session = Session(str(data["u"]), int(data["t"]), int(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def csrf_token(self, browser: str) -> str:
        """The form token for the browser holding CSRF cookie ``browser``."""
        return self._mac("csrf", browser.encode())

    def check_csrf(self, browser: str | None, token: str | None) -> bool:
        """Whether a submitted form token belongs to this browser's cookie."""
        return bool(browser and token) and hmac.compare_digest(
            str(token), self.csrf_token(str(browser)))


def new_browser_id() -> str:
    """A new CSRF cookie value."""
    return secrets.token_urlsafe(24)
