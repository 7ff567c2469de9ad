"""authlib's model interfaces over the stored rows: clients, codes, tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin
from authlib.oidc.core import AuthorizationCodeMixin

from fhir_server.auth.scopes import ResourceScope, resource_scopes
from fhir_server.auth.server.hashing import check_token
from fhir_server.auth.server.store import ClientRow, CodeRow, RefreshRow

#: scopes a new user-facing client may be granted when ``--scope`` is not given
DEFAULT_APP_SCOPE = ("openid fhirUser profile launch launch/patient launch/encounter "
                     "offline_access online_access patient/*.cruds user/*.cruds")
#: ... and a new backend-services client
DEFAULT_BACKEND_SCOPE = "system/*.rs"
#: how each kind of client authenticates at the token endpoint
AUTH_METHODS = {"public": {"none"}, "confidential": {"client_secret_basic",
                                                      "client_secret_post"},
                "backend": {"private_key_jwt"}}
#: the grants each kind of client may use
GRANT_TYPES = {"public": {"authorization_code", "refresh_token"},
               "confidential": {"authorization_code", "refresh_token"},
               "backend": {"client_credentials"}}
#: an introspection or registration caller presenting a Bearer token
BEARER_METHOD = "bearer_system"


def _covers(allowed: ResourceScope, wanted: ResourceScope) -> bool:
    return (allowed.context == wanted.context
            and allowed.resource_type in (None, wanted.resource_type)
            and wanted.permissions <= allowed.permissions
            and (not allowed.query or allowed.query == wanted.query))


def allowed_scopes(requested: str, allowed: str) -> list[str]:
    """The words of ``requested`` that ``allowed`` permits: the same word, or a resource
    scope covered by an allowed one (``patient/*.rs`` covers ``patient/Observation.r``)."""
    allowed_words = set(allowed.split())
    allowed_resources = resource_scopes(allowed)
    out: list[str] = []
    for word in dict.fromkeys(requested.split()):
        if word in allowed_words:
            out.append(word)
            continue
        parsed = resource_scopes(word)
        if parsed and any(_covers(a, parsed[0]) for a in allowed_resources):
            out.append(word)
    return out


class Client(ClientMixin):  # type: ignore[misc]
    """A registered client as authlib sees it."""

    def __init__(self, row: ClientRow) -> None:
        self.row = row
        self.client_id = row.client_id

    @property
    def kind(self) -> str:
        """public, confidential or backend."""
        return self.row.kind

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.row.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(allowed_scopes(scope or "", self.row.scope))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return check_token(client_secret, self.row.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if method == BEARER_METHOD:
            return endpoint == "introspection"
        if endpoint == "introspection" and self.kind == "public":
            return False
        return method in AUTH_METHODS[self.kind]

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.kind != "backend"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES[self.kind]


class BearerCaller(Client):
    """An introspection caller known by its access token (a system-scoped token), not
    necessarily a registered client."""

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == BEARER_METHOD and endpoint == "introspection"


class AuthCode(AuthorizationCodeMixin):  # type: ignore[misc]
    """A consumed authorization code."""

    def __init__(self, row: CodeRow) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return int(self.row.auth_time.timestamp())

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None


class RefreshToken(TokenMixin):  # type: ignore[misc]
    """A stored refresh token."""

    def __init__(self, row: RefreshRow) -> None:
        self.row = row

    def check_client(self, client: ClientMixin) -> bool:
        return bool(client.get_client_id() == self.row.client_id)

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.row.expires_at.timestamp() - time.time()))

    def is_expired(self) -> bool:
        return self.row.expires_at.timestamp() <= time.time()

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None or self.row.used_at is not None


@dataclass
class AccessToken(TokenMixin):  # type: ignore[misc]
    """An access token this server signed (its verified claims)."""

    claims: dict[str, Any]
    revoked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def jti(self) -> str:
        """Its id (``auth_revoked_token``)."""
        return str(self.claims.get("jti") or "")

    def check_client(self, client: ClientMixin) -> bool:
        return bool(client.get_client_id() == self.claims.get("client_id"))

    def get_scope(self) -> str:
        return str(self.claims.get("scope") or "")

    def get_expires_in(self) -> int:
        return max(0, int(self.claims.get("exp", 0) - time.time()))

    def is_expired(self) -> bool:
        exp = self.claims.get("exp")
        return not isinstance(exp, int | float) or exp <= time.time()

    def is_revoked(self) -> bool:
        return self.revoked
