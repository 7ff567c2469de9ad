"""authlib's AuthorizationServer on plain request values, and the tokens it issues.

A Starlette request is read (body included) on the event loop into an ``Incoming``; the
authlib work then runs in a worker thread on it and gives back an ``Outgoing``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    JsonPayload,
    JsonRequest,
    OAuth2Payload,
    OAuth2Request,
)
from joserfc import jwt
from joserfc.errors import JoseError

from fhir_server.auth.keys import SigningKeys, load_keys
from fhir_server.auth.server.hashing import new_token
from fhir_server.auth.server.models import AccessToken, Client
from fhir_server.auth.server.store import Grant, Store
from fhir_server.auth.tokens import issue_access_token, issuer_for

#: keys are re-read from the database at most this often (a ``fhir-server keys rotate``)
KEYS_SECONDS = 5.0
#: refresh token lifetimes: ``offline_access`` and ``online_access``
OFFLINE_SECONDS = 90 * 24 * 3600
ONLINE_SECONDS = 12 * 3600
_NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]


@dataclass
class Incoming:
    """One HTTP request, read: what authlib needs of it."""

    method: str
    url: str
    base: str  # the FHIR base it was sent to
    headers: dict[str, str]
    query: list[tuple[str, str]]
    form: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    #: access tokens revoked while handling it (the resource server forgets them)
    revoked: list[tuple[str, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.headers = _Headers({k.lower(): v for k, v in self.headers.items()})

    @property
    def issuer(self) -> str:
        """This server's issuer for the request's base."""
        return issuer_for(self.base)

    @property
    def token_url(self) -> str:
        """The token endpoint (the ``aud`` of client assertions)."""
        return f"{self.issuer}/auth/token"


@dataclass
class Outgoing:
    """An answer: status, body, headers."""

    status: int
    body: bytes
    headers: list[tuple[str, str]]
    media_type: str = "application/json"


class _Headers(dict[str, str]):
    """Case-insensitive ``get`` over lower-cased header names."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {k: v[0] for k, v in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class SmartRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth2Request over an ``Incoming``."""

    def __init__(self, incoming: Incoming) -> None:
        super().__init__(incoming.method, incoming.url, headers=_Headers(incoming.headers))
        self.incoming = incoming
        # form values win over the query's (both count at the authorization endpoint)
        self.payload = _Payload([*incoming.query, *incoming.form])
        self._args = {k: v for k, v in reversed(incoming.query)}
        self._form = {k: v for k, v in reversed(incoming.form)}
        #: launch context chosen on the pages (patient, encounter) and the user's row
        self.launch: tuple[str | None, str | None] = (None, None)
        #: the refresh family and access token ``jti`` issued (``SmartServer.issue``)
        self.issued: tuple[uuid.UUID | None, str] | None = None

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Json(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: Any) -> None:
        self._data = data

    @property
    def data(self) -> Any:
        return self._data


class SmartJsonRequest(JsonRequest):  # type: ignore[misc]
    """A JsonRequest over an ``Incoming`` (client registration)."""

    def __init__(self, incoming: Incoming) -> None:
        super().__init__(incoming.method, incoming.url, _Headers(incoming.headers))
        self.incoming = incoming
        self.payload = _Json(incoming.json)


class KeyCache:
    """The signing keys, re-read from the database at most every ``KEYS_SECONDS``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._keys: SigningKeys | None = None
        self._read = 0.0
        self._lock = threading.Lock()

    def get(self) -> SigningKeys:
        """The current keys."""
        with self._lock:
            if self._keys is None or time.monotonic() - self._read > KEYS_SECONDS:
                with self._store.pool.connection() as conn:
                    self._keys = load_keys(conn)
                self._read = time.monotonic()
            return self._keys


class SmartServer(AuthorizationServer):  # type: ignore[misc]
    """The authorization server: clients from the store, tokens signed with the keys."""

    def __init__(self, store: Store, keys: KeyCache, token_ttl: int,
                 fetch_jwks: Callable[[str, str | None], dict[str, Any]]) -> None:
        super().__init__(scopes_supported=None)
        self.store = store
        self.keys = keys
        self.token_ttl = token_ttl
        self.fetch_jwks = fetch_jwks

    # --- authlib's framework hooks ---------------------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or not client_id:
            return None
        row = self.store.client(client_id)
        return Client(row) if row is not None else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing: access tokens are self-contained, refresh tokens are stored as
        they are made (``issue``)."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals."""

    def create_oauth2_request(self, request: Any) -> SmartRequest:
        if isinstance(request, SmartRequest):
            return request
        assert isinstance(request, Incoming)
        return SmartRequest(request)

    def create_json_request(self, request: Any) -> SmartJsonRequest:
        assert isinstance(request, Incoming)
        return SmartJsonRequest(request)

    def handle_response(self, status: int, body: Any, headers: Any) -> Outgoing:
        pairs = [(str(k), str(v)) for k, v in (headers or [])]
        names = {k.lower() for k, _ in pairs}
        pairs += [(k, v) for k, v in _NO_STORE if k.lower() not in names]
        if isinstance(body, dict):
            return Outgoing(status, orjson.dumps(body), pairs)
        return Outgoing(status, str(body or "").encode(), pairs, "text/plain")

    # --- tokens ----------------------------------------------------------------------

    def issue(self, request: SmartRequest, grant: Grant, *, refresh: bool,
              family_id: uuid.UUID | None = None, banner: bool = False,
              refresh_scope: str | None = None) -> dict[str, Any]:
        """An access token response for ``grant`` (and a refresh token in its family
        when ``refresh``, for ``refresh_scope``: by default the grant's), the refresh
        token stored."""
        keys = self.keys.get()
        subject = grant.username or grant.client_id
        access, claims = issue_access_token(
            keys, issuer=request.incoming.issuer, audience=grant.audience,
            client_id=grant.client_id, scope=grant.scope, ttl=self.token_ttl,
            subject=subject, patient=grant.patient, encounter=grant.encounter,
            fhir_user=grant.fhir_user)
        token: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                 "expires_in": self.token_ttl, "scope": grant.scope}
        if grant.patient:
            token["patient"] = grant.patient
            token["need_patient_banner"] = banner
        if grant.encounter:
            token["encounter"] = grant.encounter
        words = (refresh_scope or grant.scope).split()
        if refresh and ("offline_access" in words or "online_access" in words):
            value = new_token()
            family_id = family_id or uuid.uuid4()
            ttl = OFFLINE_SECONDS if "offline_access" in words else ONLINE_SECONDS
            kept = replace(grant, scope=" ".join(words))
            self.store.save_refresh(value, family_id, kept, str(claims["jti"]),
                                    int(claims["exp"]), ttl)
            token["refresh_token"] = value
        request.issued = (family_id, str(claims["jti"]))
        return token

    def verify_access_token(self, value: str) -> AccessToken | None:
        """An access token this server signed and that has not expired (revoked ones
        are returned marked as such); None otherwise."""
        try:
            decoded = jwt.decode(value, self.keys.get().published, algorithms=["RS256"])
        except (JoseError, ValueError, TypeError):
            return None
        claims = decoded.claims
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= time.time():
            return None
        jti = claims.get("jti")
        revoked = isinstance(jti, str) and self.store.revoked(jti)
        return AccessToken(claims, revoked)
