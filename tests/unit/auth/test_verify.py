"""The Authenticator without a database: the built-in keys given, the clock injected.

Every way a token can be wrong is refused with 401 ``invalid_token`` (no error attribute
when there were no credentials at all); a verified token is remembered until it expires,
and a revoked one is refused at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fhir_server.auth import verify
from fhir_server.auth.keys import ALG, SigningKeys
from fhir_server.auth.verify import LEEWAY_SECONDS, Authenticator
from fhir_server.errors import Unauthorized
from fhir_server.runtime import build_context
from fhir_server.service.access import AccessScope, Caller
from fhir_server.service.context import ServiceContext
from fhir_server.settings import load_settings
from fhir_server.storage.pool import make_pool
from tests.integration.auth.conftest import (
    claims_for,
    hs256_with_public_key,
    sign,
    stranger_key,
    unsigned,
)
from tests.unit.auth.test_tokens import signing_keys

BASE = "http://127.0.0.1:3000/fhir"
BASES = (BASE,)
NOWHERE = "postgresql://nobody@127.0.0.1:1/none"


@pytest.fixture(scope="module")
def ctx() -> Iterator[ServiceContext]:
    settings = load_settings({"DATABASE_URL": NOWHERE}, env_file=None)
    yield build_context(settings, make_pool(settings))


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return signing_keys()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(keys: SigningKeys, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Authenticator:
    # a refresh (an unknown kid may be a key rotated in) reads the same keys, no database
    monkeypatch.setattr(verify, "read_keys", lambda url: keys)
    settings = load_settings({"DATABASE_URL": NOWHERE, "AUTH_AUDIENCE": "api://fhir"},
                             env_file=None)
    return Authenticator(settings, None, keys=keys, clock=clock)


def run(auth: Authenticator, ctx: ServiceContext, header: str | None,
        bases: tuple[str, ...] = BASES) -> tuple[Caller, AccessScope]:
    return asyncio.run(auth.authenticate(header, bases, ctx))


def refused(auth: Authenticator, ctx: ServiceContext, header: str | None,
            bases: tuple[str, ...] = BASES) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        run(auth, ctx, header, bases)
    assert caught.value.status == 401
    assert caught.value.code == "login"
    return caught.value


def good(keys: SigningKeys, **more: Any) -> dict[str, Any]:
    return claims_for(BASE, more.pop("scope", "system/*.read"), **more)


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_a_valid_token(auth: Authenticator, ctx: ServiceContext, keys: SigningKeys) -> None:
    claims = good(keys, scope="patient/Observation.rs launch/patient", patient="p1",
                  fhirUser="Practitioner/d1")
    caller, scope = run(auth, ctx, bearer(sign(claims, keys.current)))
    assert caller.client_id == "tester" and caller.user == "tester"
    assert caller.patient == "p1" and caller.fhir_user == "Practitioner/d1"
    assert caller.issuer == "http://127.0.0.1:3000"
    assert caller.scopes == ("patient/Observation.rs", "launch/patient")
    assert scope.permits("r", "Observation") and not scope.permits("r", "Patient")
    assert scope.compartment is not None and scope.compartment.owner_id == "p1"


def test_loopback_names_are_one_host(auth: Authenticator, ctx: ServiceContext,
                                     keys: SigningKeys) -> None:
    """A token made for localhost works on 127.0.0.1 (fhir-server token's default)."""
    claims = claims_for("http://localhost:3000/fhir", "system/*.read")
    run(auth, ctx, bearer(sign(claims, keys.current)))


def test_the_scope_is_made_once_per_token(auth: Authenticator, ctx: ServiceContext,
                                          keys: SigningKeys) -> None:
    header = bearer(sign(good(keys), keys.current))
    _, first = run(auth, ctx, header)
    _, second = run(auth, ctx, header)
    assert first is second


def test_a_known_token_is_not_verified_again(auth: Authenticator, ctx: ServiceContext,
                                             keys: SigningKeys,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    header = bearer(sign(good(keys), keys.current))
    run(auth, ctx, header)
    calls: list[str] = []
    original = auth._verify

    async def counting(token: str, now: float) -> verify.Verified:
        calls.append(token)
        return await original(token, now)

    monkeypatch.setattr(auth, "_verify", counting)
    for _ in range(3):
        run(auth, ctx, header)
    assert calls == []


def test_no_credentials_no_error_attribute(auth: Authenticator, ctx: ServiceContext) -> None:
    for header in (None, ""):
        exc = refused(auth, ctx, header)
        assert exc.headers["WWW-Authenticate"] == 'Bearer realm="fhir"'


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token x"])
def test_another_scheme_counts_as_no_credentials(auth: Authenticator, ctx: ServiceContext,
                                                 header: str) -> None:
    exc = refused(auth, ctx, header)
    assert exc.headers["WWW-Authenticate"] == 'Bearer realm="fhir"'  # RFC 6750 3.1


@pytest.mark.parametrize("header", ["Bearer", "Bearer   "])
def test_an_empty_bearer_token_is_malformed(auth: Authenticator, ctx: ServiceContext,
                                            header: str) -> None:
    exc = refused(auth, ctx, header)
    assert 'error="invalid_request"' in exc.headers["WWW-Authenticate"]


def invalid(exc: Unauthorized) -> None:
    challenge = exc.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="fhir", error="invalid_token"'), challenge
    assert "error_description=" in challenge


@pytest.mark.parametrize("token", ["abc", "a.b.c", "a.b", "....", "eyJhbGciOi.x.y"])
def test_malformed(auth: Authenticator, ctx: ServiceContext, token: str) -> None:
    invalid(refused(auth, ctx, bearer(token)))


def test_expired_beyond_the_leeway(auth: Authenticator, ctx: ServiceContext,
                                   keys: SigningKeys) -> None:
    now = int(time.time())
    claims = good(keys, ttl=0) | {"exp": now - LEEWAY_SECONDS - 5, "iat": now - 100,
                                  "nbf": now - 100}
    exc = refused(auth, ctx, bearer(sign(claims, keys.current)))
    invalid(exc)
    assert "expired" in exc.diagnostics


def test_expired_within_the_leeway_is_accepted(auth: Authenticator, ctx: ServiceContext,
                                               keys: SigningKeys) -> None:
    claims = good(keys) | {"exp": int(time.time()) - LEEWAY_SECONDS + 10}
    run(auth, ctx, bearer(sign(claims, keys.current)))


def test_a_remembered_token_expires(auth: Authenticator, ctx: ServiceContext,
                                    keys: SigningKeys, clock: Clock) -> None:
    header = bearer(sign(good(keys, ttl=60), keys.current))
    run(auth, ctx, header)
    clock.now += 60 + LEEWAY_SECONDS + 5
    assert "expired" in refused(auth, ctx, header).diagnostics


def test_not_yet_valid(auth: Authenticator, ctx: ServiceContext, keys: SigningKeys) -> None:
    claims = good(keys) | {"nbf": int(time.time()) + LEEWAY_SECONDS + 60}
    exc = refused(auth, ctx, bearer(sign(claims, keys.current)))
    invalid(exc)
    assert "nbf" in exc.diagnostics


def test_no_expiry(auth: Authenticator, ctx: ServiceContext, keys: SigningKeys) -> None:
    claims = good(keys)
    del claims["exp"]
    invalid(refused(auth, ctx, bearer(sign(claims, keys.current))))


def test_unknown_key(auth: Authenticator, ctx: ServiceContext, keys: SigningKeys) -> None:
    invalid(refused(auth, ctx, bearer(sign(good(keys), stranger_key()))))


def test_another_key_under_the_servers_kid(auth: Authenticator, ctx: ServiceContext,
                                          keys: SigningKeys) -> None:
    token = sign(good(keys), stranger_key(), kid=keys.kid)
    invalid(refused(auth, ctx, bearer(token)))


@pytest.mark.parametrize("kid", [True, False])
def test_alg_none(auth: Authenticator, ctx: ServiceContext, keys: SigningKeys,
                  kid: bool) -> None:
    token = unsigned(good(keys), kid=keys.kid if kid else None)
    invalid(refused(auth, ctx, bearer(token)))


def test_hs256_keyed_with_the_public_key(auth: Authenticator, ctx: ServiceContext,
                                         keys: SigningKeys) -> None:
    token = hs256_with_public_key(good(keys), keys.current, keys.kid)
    invalid(refused(auth, ctx, bearer(token)))


def test_tampered_claims(auth: Authenticator, ctx: ServiceContext, keys: SigningKeys) -> None:
    head, _, sig = sign(good(keys, scope="patient/*.rs", patient="p1"),
                        keys.current).split(".")
    forged = unsigned(good(keys, scope="system/*.*")).split(".")[1]
    invalid(refused(auth, ctx, bearer(f"{head}.{forged}.{sig}")))


def test_wrong_audience(auth: Authenticator, ctx: ServiceContext, keys: SigningKeys) -> None:
    claims = good(keys) | {"aud": "http://127.0.0.1:3001/fhir"}
    exc = refused(auth, ctx, bearer(sign(claims, keys.current)))
    invalid(exc)
    assert "aud" in exc.diagnostics


def test_configured_audience_and_lists(auth: Authenticator, ctx: ServiceContext,
                                       keys: SigningKeys) -> None:
    run(auth, ctx, bearer(sign(good(keys) | {"aud": "api://fhir"}, keys.current)))
    run(auth, ctx, bearer(sign(good(keys) | {"aud": ["x", BASE]}, keys.current)))
    invalid(refused(auth, ctx, bearer(sign(good(keys) | {"aud": ["x", "y"]},
                                           keys.current))))
    invalid(refused(auth, ctx, bearer(sign(good(keys) | {"aud": 5}, keys.current))))


def test_audience_is_checked_per_request_base(auth: Authenticator, ctx: ServiceContext,
                                              keys: SigningKeys) -> None:
    header = bearer(sign(good(keys), keys.current))
    run(auth, ctx, header)
    # the same (remembered) token sent to another base of the server
    invalid(refused(auth, ctx, header, ("http://other.example/fhir",)))


def test_wrong_issuer_of_the_built_in_keys(auth: Authenticator, ctx: ServiceContext,
                                           keys: SigningKeys) -> None:
    claims = good(keys) | {"iss": "http://evil.example"}
    exc = refused(auth, ctx, bearer(sign(claims, keys.current)))
    invalid(exc)
    assert "iss" in exc.diagnostics


def test_revoked_at_once(auth: Authenticator, ctx: ServiceContext, keys: SigningKeys) -> None:
    claims = good(keys)
    header = bearer(sign(claims, keys.current))
    run(auth, ctx, header)
    auth.forget(claims["jti"])
    assert "revoked" in refused(auth, ctx, header).diagnostics
    other = good(keys)
    run(auth, ctx, bearer(sign(other, keys.current)))  # others unaffected


@pytest.mark.parametrize(("claims", "client"), [
    ({"client_id": "c1", "azp": "a", "appid": "b"}, "c1"),
    ({"client_id": None, "azp": "a", "appid": "b"}, "a"),
    ({"client_id": None, "appid": "b"}, "b"),
    ({"client_id": None, "sub": "s1"}, "s1"),
    ({"client_id": None, "sub": None}, "-"),
])
def test_client_id_claims(auth: Authenticator, ctx: ServiceContext, keys: SigningKeys,
                          claims: dict[str, Any], client: str) -> None:
    full = {k: v for k, v in (good(keys) | claims).items() if v is not None}
    caller, _ = run(auth, ctx, bearer(sign(full, keys.current)))
    assert caller.client_id == client


def test_entra_style_scp(auth: Authenticator, ctx: ServiceContext, keys: SigningKeys) -> None:
    claims = good(keys)
    del claims["scope"]
    caller, scope = run(auth, ctx, bearer(sign(claims | {"scp": "user/Patient.rs"},
                                               keys.current)))
    assert caller.scopes == ("user/Patient.rs",)
    assert scope.permits("r", "Patient") and not scope.permits("r", "Observation")
    caller, _ = run(auth, ctx, bearer(sign(
        claims | {"scp": ["user/Patient.rs", 3, "user/Encounter.rs"]}, keys.current)))
    assert caller.scopes == ("user/Patient.rs", "user/Encounter.rs")


def test_a_token_granting_nothing_is_valid_but_permits_nothing(
        auth: Authenticator, ctx: ServiceContext, keys: SigningKeys) -> None:
    _, scope = run(auth, ctx, bearer(sign(good(keys, scope="openid patient/*.rs"),
                                          keys.current)))  # patient/ without a patient
    assert scope.rules == () and not scope.admin


def test_only_asymmetric_algorithms() -> None:
    assert "none" not in verify.ALGORITHMS
    assert not [a for a in verify.ALGORITHMS if a.startswith("HS")]
    assert ALG in verify.ALGORITHMS
