"""Introspection (RFC 7662), revocation (RFC 7009) and dynamic registration (RFC 7591),
and the Bearer-token check of their operator-facing callers."""

from __future__ import annotations

from typing import Any

import psycopg
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidClientError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint, InvalidClientMetadataError
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from fhir_server.auth.scopes import resource_scopes
from fhir_server.auth.server.hashing import new_token, token_hash
from fhir_server.auth.server.models import (
    BEARER_METHOD,
    DEFAULT_APP_SCOPE,
    DEFAULT_BACKEND_SCOPE,
    AccessToken,
    BearerCaller,
    Client,
    RefreshToken,
)
from fhir_server.auth.server.oauth import SmartJsonRequest, SmartRequest, SmartServer
from fhir_server.auth.server.store import ClientRow
from fhir_server.service.access import ALL_PERMISSIONS

_ALL_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


def bearer_token(server: SmartServer, headers: Any) -> AccessToken | None:
    """The valid, unrevoked access token of an ``Authorization: Bearer`` header."""
    kind, _, value = str(headers.get("Authorization") or "").partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        return None
    token = server.verify_access_token(value.strip())
    return token if token is not None and not token.is_revoked() else None


def has_system_scope(token: AccessToken, admin: bool) -> bool:
    """Whether the token grants a ``system/`` scope (``system/*.*`` when ``admin``)."""
    for scope in resource_scopes(token.get_scope()):
        if scope.context != "system":
            continue
        if not admin or (scope.resource_type is None and scope.permissions == ALL_PERMISSIONS
                         and not scope.query):
            return True
    return False


def authenticate_bearer(server: SmartServer) -> Any:
    """A client authentication method for introspection: a Bearer access token with a
    ``system/`` scope."""

    def authenticate(query_client: Any, request: SmartRequest) -> Client | None:
        token = bearer_token(server, request.headers)
        if token is None or not has_system_scope(token, admin=False):
            return None
        client_id = str(token.claims.get("client_id") or token.claims.get("sub") or "-")
        row = server.store.client(client_id)
        if row is None:  # an operator's token (fhir-server token)
            from datetime import UTC, datetime

            row = ClientRow(client_id, "operator", "backend", None, [], token.get_scope(),
                            None, None, False, datetime.now(UTC))
        return BearerCaller(row)

    return authenticate


def _query_token(server: SmartServer, value: str, hint: str | None
                 ) -> AccessToken | RefreshToken | None:
    if hint != "refresh_token" and value.count(".") == 2:
        found = server.verify_access_token(value)
        if found is not None:
            return found
    row = server.store.refresh(value)
    return RefreshToken(row) if row is not None else None


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662 for confidential and backend clients and system-scoped Bearer tokens."""

    CLIENT_AUTH_METHODS = [BEARER_METHOD, "client_secret_basic", "client_secret_post",
                           "private_key_jwt"]

    def query_token(self, token_string: str, token_type_hint: str | None
                    ) -> AccessToken | RefreshToken | None:
        return _query_token(self.server, token_string, token_type_hint)

    def check_permission(self, token: Any, client: Client, request: SmartRequest) -> bool:
        return True

    def introspect_token(self, token: AccessToken | RefreshToken) -> dict[str, Any]:
        if isinstance(token, RefreshToken):
            row = token.row
            out: dict[str, Any] = {
                "active": True, "token_type": "refresh_token", "scope": row.scope,
                "client_id": row.client_id, "sub": row.username or row.client_id,
                "exp": int(row.expires_at.timestamp()), "aud": row.audience}
            extra = {"patient": row.patient, "encounter": row.encounter,
                     "fhirUser": row.fhir_user}
        else:
            claims = token.claims
            out = {"active": True, "token_type": "Bearer",
                   **{k: claims[k] for k in ("scope", "client_id", "sub", "exp", "iat", "iss",
                                             "aud", "jti") if k in claims}}
            extra = {k: claims.get(k) for k in ("patient", "encounter", "fhirUser")}
        out.update({k: v for k, v in extra.items() if v})
        if "sub" in out:
            out["username"] = out["sub"]
        return out


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: a refresh token revokes its family (and their access tokens); an access
    token goes into ``auth_revoked_token``."""

    CLIENT_AUTH_METHODS = _ALL_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None
                    ) -> AccessToken | RefreshToken | None:
        return _query_token(self.server, token_string, token_type_hint)

    def revoke_token(self, token: AccessToken | RefreshToken, request: SmartRequest) -> None:
        server: SmartServer = self.server
        if isinstance(token, RefreshToken):
            request.incoming.revoked += server.store.revoke_family(token.row.family_id)
            return
        if token.jti:
            exp = int(token.claims.get("exp", 0))
            server.store.revoke_access(token.jti, exp)
            from datetime import UTC, datetime

            request.incoming.revoked.append((token.jti, datetime.fromtimestamp(exp, UTC)))


class Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    """RFC 7591, protected by an initial access token: a Bearer token of this server
    granting ``system/*.*``. ``token_endpoint_auth_method`` picks the kind of client:
    ``none`` public, ``private_key_jwt`` backend (with ``jwks`` or ``jwks_uri``), else
    confidential (a secret is returned once)."""

    def authenticate_token(self, request: SmartJsonRequest) -> AccessToken | None:
        token = bearer_token(self.server, request.headers)
        if token is None or not has_system_scope(token, admin=True):
            raise AccessDeniedError("registration needs a Bearer token of this server "
                                    "granting system/*.*")
        return token

    def get_server_metadata(self) -> dict[str, Any]:
        return {"token_endpoint_auth_methods_supported": _ALL_METHODS[:],
                "grant_types_supported": ["authorization_code", "refresh_token",
                                          "client_credentials"],
                "response_types_supported": ["code"]}

    def resolve_public_key(self, request: SmartJsonRequest) -> None:
        return None

    def _kind(self, request: SmartJsonRequest) -> str:
        data = request.payload.data
        method = data.get("token_endpoint_auth_method", "client_secret_basic")
        return {"none": "public", "private_key_jwt": "backend"}.get(method, "confidential")

    def generate_client_secret(self, request: SmartJsonRequest) -> str | None:
        return new_token() if self._kind(request) == "confidential" else None

    def generate_client_info(self, request: SmartJsonRequest) -> dict[str, Any]:
        info: dict[str, Any] = super().generate_client_info(request)
        if info.get("client_secret") is None:
            info.pop("client_secret", None)
            info.pop("client_secret_expires_at", None)
        return info

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any],
                    request: SmartJsonRequest) -> str:
        kind = self._kind(request)
        uris = list(client_metadata.get("redirect_uris") or [])
        jwks = client_metadata.get("jwks")
        jwks_uri = client_metadata.get("jwks_uri")
        if kind == "backend" and not jwks and not jwks_uri:
            raise InvalidClientMetadataError("private_key_jwt needs jwks or jwks_uri")
        if kind != "backend" and not uris:
            raise InvalidClientMetadataError("redirect_uris is required")
        if kind == "backend" and "client_credentials" not in client_metadata.get(
                "grant_types", ["client_credentials"]):
            client_metadata["grant_types"] = ["client_credentials"]
        scope = client_metadata.get("scope") or (
            DEFAULT_BACKEND_SCOPE if kind == "backend" else DEFAULT_APP_SCOPE)
        secret = client_info.get("client_secret")
        try:
            client_id: str = self.server.store.add_client(
                name=str(client_metadata.get("client_name") or client_info["client_id"]),
                kind=kind, secret_hash=token_hash(secret) if secret else None,
                redirect_uris=uris, scope=scope, jwks=jwks, jwks_uri=jwks_uri,
                client_id=client_info["client_id"])
        except psycopg.Error as exc:  # a constraint of the table: bad metadata
            raise InvalidClientError(description=f"the client cannot be saved: {exc}"
                                     ) from None
        return client_id
