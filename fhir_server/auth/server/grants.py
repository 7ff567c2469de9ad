"""The grants: authorization code (+ PKCE S256, OpenID Connect), refresh token with
rotation and reuse detection, client credentials with a private_key_jwt assertion."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidRequestError,
    grants,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from fhir_server.auth.keys import ALG
from fhir_server.auth.server.models import AuthCode, Client, RefreshToken
from fhir_server.auth.server.oauth import SmartRequest, SmartServer
from fhir_server.auth.server.store import CodeRow, Grant, UserRow

log = logging.getLogger(__name__)

#: authorization codes live this long (seconds)
CODE_SECONDS = 60
#: algorithms accepted for client assertions (SMART Backend Services)
ASSERTION_ALGORITHMS = ["RS384", "ES384"]
#: a client assertion may not be valid for longer than this (SMART: five minutes)
ASSERTION_MAX_SECONDS = 300
JWKS_CACHE_SECONDS = 300
JWKS_REFETCH_SECONDS = 3


def _server(grant: Any) -> SmartServer:
    server = grant.server
    assert isinstance(server, SmartServer)
    return server


def _request(grant: Any) -> SmartRequest:
    request = grant.request
    assert isinstance(request, SmartRequest)
    return request


class SmartAuthorizationCode(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """Authorization code: the code carries the scope, audience and launch context."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code: str, request: SmartRequest) -> None:
        user: UserRow = request.user
        data = request.payload.data
        patient, encounter = request.launch
        row = CodeRow(
            client_id=request.client.get_client_id(), username=user.username,
            redirect_uri=request.payload.redirect_uri or "", scope=request.scope or "",
            audience=data.get("aud", request.incoming.base),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            nonce=data.get("nonce"), patient=patient, encounter=encounter,
            auth_time=datetime.now(UTC))
        _server(self).store.save_code(code, row, CODE_SECONDS)

    def query_authorization_code(self, code: str, client: Client) -> AuthCode | None:
        row, revoked = _server(self).store.take_code(code, client.get_client_id())
        _request(self).incoming.revoked += revoked
        return AuthCode(row) if row is not None else None

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        """Nothing: the code was marked used when it was taken."""

    def authenticate_user(self, authorization_code: AuthCode) -> UserRow | None:
        user = _server(self).store.user(authorization_code.row.username)
        return user if user is not None and not user.disabled else None

    def generate_token(self, user: UserRow | None = None, scope: str | None = None,
                       grant_type: str | None = None, expires_in: int | None = None,
                       include_refresh_token: bool = True) -> dict[str, Any]:
        request = _request(self)
        code: AuthCode = request.authorization_code
        row = code.row
        fhir_user = user.fhir_user if user is not None and "fhirUser" in row.scope.split() \
            else None
        grant = Grant(row.client_id, row.username, row.scope, row.audience, row.patient,
                      row.encounter, fhir_user)
        token = _server(self).issue(request, grant, refresh=include_refresh_token,
                                    banner=row.patient is not None)
        if request.issued is not None and request.issued[0] is not None:
            _server(self).store.code_issued(row.code_hash, request.issued[0],
                                            request.issued[1])
        return token


class SmartCodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only; required of public clients."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") and grant.request.client.kind == "public":
            raise InvalidRequestError("public clients must use PKCE (code_challenge with "
                                      "code_challenge_method=S256)")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class SmartOpenIDCode(OpenIDCode):  # type: ignore[misc]
    """OpenID Connect: an ``id_token`` signed with the server's keys, ``fhirUser``
    claim with the ``fhirUser`` scope."""

    def __init__(self, server: SmartServer) -> None:
        super().__init__(require_nonce=False)
        self._server = server

    def exists_nonce(self, nonce: str, request: SmartRequest) -> bool:
        return self._server.store.nonce_used(request.payload.client_id or "", nonce)

    def resolve_client_private_key(self, client: Client) -> Key:
        return self._server.keys.get().current

    def get_client_algorithm(self, client: Client) -> str:
        return ALG

    def get_encode_header(self, client: Client) -> dict[str, Any]:
        return {"alg": ALG, "kid": self._server.keys.get().kid, "typ": "JWT"}

    def get_compatible_claims(self, request: SmartRequest) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": request.incoming.issuer, "aud": [request.client.get_client_id()],
                "iat": now, "exp": now + self._server.token_ttl, "auth_time": now}

    def generate_user_info(self, user: UserRow, scope: str) -> UserInfo:
        info = UserInfo(sub=user.username)
        if user.fhir_user and "fhirUser" in scope.split():
            info["fhirUser"] = user.fhir_user
        if "profile" in scope.split():
            info["preferred_username"] = user.username
        return info


class SmartRefreshToken(grants.RefreshTokenGrant):  # type: ignore[misc]
    """Refresh with rotation: each use gives a new refresh token of the same family; a
    used one coming back revokes the family and the access tokens issued from it."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        row, revoked = _server(self).store.take_refresh(refresh_token)
        if revoked:
            log.warning("a used refresh token came back: its family is revoked")
        _request(self).incoming.revoked += revoked
        return RefreshToken(row) if row is not None else None

    def authenticate_user(self, refresh_token: RefreshToken) -> UserRow | Client | None:
        row = refresh_token.row
        if row.username is None:
            client: Client = _request(self).client
            return client
        user = _server(self).store.user(row.username)
        return user if user is not None and not user.disabled else None

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        """Nothing: it was marked used when it was taken."""

    def generate_token(self, user: Any = None, scope: str | None = None,
                       grant_type: str | None = None, expires_in: int | None = None,
                       include_refresh_token: bool = True) -> dict[str, Any]:
        request = _request(self)
        old: RefreshToken = request.refresh_token
        row = old.row
        words = (scope or row.scope).split()
        grant = Grant(row.client_id, row.username, " ".join(words), row.audience,
                      row.patient, row.encounter,
                      row.fhir_user if "fhirUser" in words else None)
        # the access token may be narrowed; the grant (the new refresh token) is not
        return _server(self).issue(request, grant, refresh=True, family_id=row.family_id,
                                   banner=row.patient is not None, refresh_scope=row.scope)


class SmartClientCredentials(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """Client credentials for backend services (a private_key_jwt assertion)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]

    def validate_requested_scope(self) -> None:
        request = _request(self)
        scope = request.client.get_allowed_scope(request.payload.scope)
        if not scope:
            from authlib.oauth2.rfc6749 import InvalidScopeError

            raise InvalidScopeError("none of the requested scopes is allowed to this client")
        request.scope = scope

    def generate_token(self, user: Any = None, scope: str | None = None,
                       grant_type: str | None = None, expires_in: int | None = None,
                       include_refresh_token: bool = True) -> dict[str, Any]:
        request = _request(self)
        client_id = request.client.get_client_id()
        grant = Grant(client_id, None, request.scope or "", request.incoming.base)
        return _server(self).issue(request, grant, refresh=False)


class JwksFetcher:
    """Clients' ``jwks_uri`` documents, cached; an unknown ``kid`` fetches again (at
    most every ``JWKS_REFETCH_SECONDS`` per URL)."""

    def __init__(self, timeout: float = 5.0) -> None:
        self._timeout = timeout
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str, kid: str | None = None) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None:
            fetched, data = cached
            known = kid is None or any(k.get("kid") == kid for k in data.get("keys", []))
            if now - fetched < JWKS_CACHE_SECONDS and (
                    known or now - fetched < JWKS_REFETCH_SECONDS):
                return data
        try:
            answer = httpx.get(url, timeout=self._timeout, follow_redirects=False)
            answer.raise_for_status()
            data = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise InvalidClientError(description=f"the client's jwks_uri cannot be read: "
                                                 f"{exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise InvalidClientError(description="the client's jwks_uri is not a JWKS")
        with self._lock:
            self._cache[url] = (now, data)
        return data


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt`` (RFC 7523 section 2.2, SMART Backend Services): RS384 or
    ES384, ``aud`` the token endpoint, each ``jti`` once, at most five minutes."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: SmartServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._server = server
        self._local = threading.local()

    def __call__(self, query_client: Any, request: SmartRequest) -> Client | None:
        self._local.request = request
        self._local.kid = None
        assertion = request.form.get("client_assertion")
        if assertion:
            try:
                headers, _ = self.extract_assertion(assertion)
                self._local.kid = headers.get("kid")
            except InvalidClientError:
                pass
        client: Client | None = super().__call__(query_client, request)
        return client

    def get_audiences(self) -> list[str]:
        request: SmartRequest = self._local.request
        return [request.incoming.token_url]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidClientError(description=f"the client assertion does not verify: "
                                                 f"{exc}") from None
        claims = token.claims
        self.verify_claims(claims)
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp - time.time() > ASSERTION_MAX_SECONDS + 30:
            raise InvalidClientError(description="the client assertion's exp is more than "
                                                 "five minutes away")
        return dict(claims)

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        if not isinstance(jti, str) or not jti:
            return False
        return self._server.store.first_use_of_jti(str(claims["sub"]), jti,
                                                   float(claims["exp"]))

    def resolve_client_public_key(self, client: Client) -> KeySet:
        if client.kind != "backend":
            raise InvalidClientError(description="this client does not authenticate with "
                                                 "private_key_jwt")
        data = client.row.jwks
        if data is None and client.row.jwks_uri:
            data = self._server.fetch_jwks(client.row.jwks_uri, self._local.kid)
        if not data:
            raise InvalidClientError(description="the client has no public keys")
        try:
            return KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidClientError(description=f"the client's JWKS is not usable: {exc}"
                                     ) from None
