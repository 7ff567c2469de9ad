"""The resource server's side: a Bearer token verified, as a Caller and an AccessScope.

A token is accepted when its signature verifies with a key of the built-in server (its
``iss`` then one of this server's own issuers) or of the external issuer
(``AUTH_ISSUER``), it is within ``exp``/``nbf`` (``LEEWAY_SECONDS`` of clock skew), its
``aud`` names one of this server's FHIR bases or ``AUTH_AUDIENCE``, and it has not been
revoked. Verification is remembered per token until it expires (clients reuse a token
for its lifetime), so a request with a known token costs a dictionary look-up; the
revocation list is re-read every ``REFRESH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from psycopg_pool import AsyncConnectionPool

from fhir_server.auth.jwks import RemoteJwks
from fhir_server.auth.keys import SigningKeys, read_keys
from fhir_server.auth.scopes import access_scope
from fhir_server.auth.tokens import any_same, issuer_for, normal_url
from fhir_server.errors import FhirError, ServiceUnavailable, Unauthorized
from fhir_server.service.access import AccessScope, Caller
from fhir_server.service.context import ServiceContext
from fhir_server.settings import Settings

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 30
REFRESH_SECONDS = 5.0
#: asymmetric algorithms only: never ``none``, never a shared secret
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512"]
_CACHE_SIZE = 10_000


@dataclass
class Verified:
    """A verified token: who it speaks for, until when, and (made on first use) the
    access scope it grants."""

    caller: Caller
    expires: float
    jti: str | None
    audiences: tuple[str, ...]
    #: the issuer is the built-in server (its ``iss`` is checked per request base)
    built_in: bool
    scope: AccessScope | None = field(default=None, repr=False)
    #: the bases ``aud`` and ``iss`` were last found right for (URL comparison is the
    #: costly part of a known token's check, and a client keeps using one base)
    checked_for: tuple[str, ...] | None = field(default=None, repr=False)


class Authenticator:
    """Verifies tokens of the built-in server and of ``AUTH_ISSUER``."""

    def __init__(self, settings: Settings, pool: AsyncConnectionPool | None,
                 keys: SigningKeys | None = None, external: RemoteJwks | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._pool = pool
        self._keys = keys
        self._external = external
        self._clock = clock
        self._cache: OrderedDict[str, Verified] = OrderedDict()
        self._revoked: frozenset[str] = frozenset()
        self._keys_read = 0.0

    @property
    def keys(self) -> SigningKeys:
        """The built-in server's keys (loaded by ``refresh``)."""
        assert self._keys is not None, "Authenticator.refresh() has not run"
        return self._keys

    async def refresh(self, with_keys: bool = True) -> None:
        """Re-read the revocation list (and the signing keys, for a rotation)."""
        if with_keys or self._keys is None:
            self._keys = await asyncio.to_thread(read_keys, self._settings.database_url)
            self._keys_read = time.monotonic()
        if self._pool is None:
            return
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT jti FROM auth_revoked_token WHERE expires_at > now() - interval"
                " '1 minute'")
            revoked = frozenset(row[0] for row in await cur.fetchall())
        if revoked != self._revoked:
            self._revoked = revoked
            for token, entry in list(self._cache.items()):
                if entry.jti in revoked:
                    del self._cache[token]

    async def refresh_forever(self) -> None:
        """``refresh`` every ``REFRESH_SECONDS`` (keys every minute), errors logged."""
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh(with_keys=time.monotonic() - self._keys_read > 60)
            except Exception as exc:  # the database may be away; try again later
                log.warning("cannot refresh the token revocation list: %s", exc)

    def forget(self, jti: str) -> None:
        """A token was revoked here: refuse it at once (other workers: at next refresh)."""
        self._revoked = self._revoked | {jti}
        for token, entry in list(self._cache.items()):
            if entry.jti == jti:
                del self._cache[token]

    async def authenticate(self, authorization: str | None, bases: tuple[str, ...],
                           ctx: ServiceContext) -> tuple[Caller, AccessScope]:
        """The caller and scope of a request's ``Authorization`` header; Unauthorized."""
        if not authorization:
            raise Unauthorized("this request needs an access token (Authorization: "
                               "Bearer ...)", error=None)
        kind, _, token = authorization.partition(" ")
        token = token.strip()
        if kind.lower() != "bearer":
            # RFC 6750 3.1: another scheme counts as no credentials: no error code
            raise Unauthorized(f"only Bearer access tokens are accepted, not {kind[:20]!r}",
                               error=None)
        if not token:
            raise Unauthorized("the Bearer token is empty", error="invalid_request")
        entry = self._cache.get(token)
        now = self._clock()
        if entry is None or entry.expires + LEEWAY_SECONDS < now:
            entry = await self._verify(token, now)
            self._cache[token] = entry
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        if entry.jti is not None and entry.jti in self._revoked:
            raise Unauthorized("the access token has been revoked")
        self._check_audience(entry, bases)
        if entry.scope is None:
            try:
                entry.scope = access_scope(ctx, entry.caller.scopes, entry.caller.patient)
            except FhirError as exc:
                raise Unauthorized(f"the token's launch context is not usable: "
                                   f"{exc.diagnostics}") from None
        return entry.caller, entry.scope

    def _check_audience(self, entry: Verified, bases: tuple[str, ...]) -> None:
        if entry.checked_for == bases:
            return
        accepted = (*bases, *self._settings.audiences)
        if not any_same(entry.audiences, accepted):
            raise Unauthorized("the token was not issued for this server (aud)")
        if entry.built_in and not any_same(
                [entry.caller.issuer or ""], [issuer_for(b) for b in bases]):
            raise Unauthorized("the token's issuer (iss) is not this server")
        entry.checked_for = bases

    async def _verify(self, token: str, now: float) -> Verified:
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError, TypeError) as exc:
            raise Unauthorized(f"the access token is malformed: {exc}") from None
        kid = header.get("kid")
        if self._keys is None:
            try:
                await self.refresh()
            except Exception as exc:
                raise ServiceUnavailable(f"the token signing keys cannot be read: {exc}"
                                         ) from None
        built_in = self._keys is not None and self._keys.knows(kid)
        if not built_in and self._keys is not None and kid and self._external is None and (
                time.monotonic() - self._keys_read > REFRESH_SECONDS):
            await self.refresh()  # a key rotated in by another worker
            built_in = self.keys.knows(kid)
        keys: KeySet | None
        if built_in:
            keys = self.keys.published
        elif self._external is not None:
            keys = await self._external.keys(kid)
            if keys is None:
                raise Unauthorized("the token's issuer cannot be reached to check it")
        else:
            raise Unauthorized("the token is not signed by a key this server trusts")
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except (JoseError, ValueError, TypeError) as exc:
            raise Unauthorized(f"the access token does not verify: {exc}") from None
        claims = decoded.claims
        self._check_times(claims, now)
        issuer = str(claims.get("iss") or "")
        if not built_in and normal_url(issuer) != normal_url(self._settings.auth_issuer):
            raise Unauthorized("the token's issuer (iss) is not trusted")
        return Verified(_caller(claims), float(claims["exp"]), _text(claims.get("jti")),
                        _audiences(claims.get("aud")), built_in)

    @staticmethod
    def _check_times(claims: dict[str, Any], now: float) -> None:
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float):
            raise Unauthorized("the access token has no expiry (exp)")
        if exp + LEEWAY_SECONDS < now:
            raise Unauthorized("the access token has expired")
        if isinstance(nbf, int | float) and nbf - LEEWAY_SECONDS > now:
            raise Unauthorized("the access token is not valid yet (nbf)")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _audiences(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _caller(claims: dict[str, Any]) -> Caller:
    """The Caller a token speaks for; the client is named by ``client_id`` (SMART, RFC
    9068), else ``azp`` (OpenID), ``appid`` (Entra ID v1) or the subject."""
    scope = claims.get("scope", claims.get("scp", ""))
    scopes = tuple(scope.split()) if isinstance(scope, str) else tuple(
        s for s in scope if isinstance(s, str)) if isinstance(scope, list) else ()
    client = next((v for k in ("client_id", "azp", "appid", "sub")
                   if (v := _text(claims.get(k)))), "-")
    return Caller(client, _text(claims.get("sub")), _text(claims.get("fhirUser")),
                  _text(claims.get("patient")), _text(claims.get("encounter")),
                  _text(claims.get("iss")), scopes)
