"""Access tokens of the built-in authorization server: signed JWTs (RFC 9068 shape).

Issuer and audience follow from the FHIR base: the issuer is the base without its
``/fhir`` (so OpenID discovery is at ``/.well-known/openid-configuration``), the
audience the base itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc import jwt

from fhir_server.auth.keys import ALG, SigningKeys

_LOOPBACK = {"localhost", "127.0.0.1", "[::1]", "::1"}


def issuer_for(base: str) -> str:
    """The built-in server's issuer for a FHIR base (``http://h:3000/fhir`` ->
    ``http://h:3000``)."""
    base = base.rstrip("/")
    return base[: -len("/fhir")] if base.endswith("/fhir") else base


def same_url(a: str, b: str) -> bool:
    """Whether two URLs name the same place; loopback host names are one host (a token
    made for ``localhost`` works on ``127.0.0.1``)."""
    return normal_url(a) == normal_url(b)


def normal_url(url: str) -> str:
    """``url`` without a trailing slash, its scheme and host lower-cased, loopback
    names as ``localhost``."""
    parts = urlsplit(url.rstrip("/"))
    host = (parts.hostname or "").lower()
    if host in _LOOPBACK:
        host = "localhost"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))


def any_same(values: Iterable[str], accepted: Sequence[str]) -> bool:
    """Whether one of ``values`` names the same URL as one of ``accepted``."""
    wanted = {normal_url(a) for a in accepted}
    return any(normal_url(v) in wanted for v in values)


def issue_access_token(keys: SigningKeys, *, issuer: str, audience: str | list[str],
                       client_id: str, scope: str, ttl: int, subject: str | None = None,
                       patient: str | None = None, encounter: str | None = None,
                       fhir_user: str | None = None, extra: dict[str, Any] | None = None,
                       ) -> tuple[str, dict[str, Any]]:
    """A signed access token and its claims (``jti`` identifies it for revocation)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer, "aud": audience, "sub": subject or client_id, "client_id": client_id,
        "scope": scope, "iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex,
    }
    if patient:
        claims["patient"] = patient
    if encounter:
        claims["encounter"] = encounter
    if fhir_user:
        claims["fhirUser"] = fhir_user
    if extra:
        claims.update(extra)
    token = jwt.encode({"alg": ALG, "kid": keys.kid, "typ": "at+jwt"}, claims, keys.current)
    return token, claims
