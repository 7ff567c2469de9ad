"""The built-in server's token helpers: issuer and URL comparison, the tokens it signs."""

from __future__ import annotations

import time

import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet, RSAKey

from fhir_server.auth.keys import ALG, SigningKeys
from fhir_server.auth.tokens import (
    any_same,
    issue_access_token,
    issuer_for,
    normal_url,
    same_url,
)


def signing_keys(*retired: RSAKey) -> SigningKeys:
    """Keys as ``load_keys`` makes them, without a database."""
    current = RSAKey.generate_key(2048, parameters={"kid": "k-now", "alg": ALG, "use": "sig"})
    return SigningKeys(current, KeySet([current, *retired]))


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return signing_keys()


@pytest.mark.parametrize(("base", "issuer"), [
    ("http://h:3000/fhir", "http://h:3000"),
    ("http://h:3000/fhir/", "http://h:3000"),
    ("https://example.org/r4/fhir", "https://example.org/r4"),
    ("https://example.org/r4", "https://example.org/r4"),  # no /fhir: the base itself
    ("http://h:3000/", "http://h:3000"),
])
def test_issuer_for(base: str, issuer: str) -> None:
    assert issuer_for(base) == issuer


@pytest.mark.parametrize(("a", "b"), [
    ("http://localhost:3000/fhir", "http://127.0.0.1:3000/fhir"),
    ("http://localhost:3000/fhir", "http://[::1]:3000/fhir"),
    ("http://127.0.0.1:3000/fhir/", "http://localhost:3000/fhir"),
    ("HTTP://LocalHost:3000/fhir", "http://127.0.0.1:3000/fhir"),
    ("https://Example.ORG/fhir", "https://example.org/fhir"),
    ("http://localhost/fhir", "http://127.0.0.1/fhir"),
])
def test_same_url(a: str, b: str) -> None:
    assert same_url(a, b)
    assert same_url(b, a)


@pytest.mark.parametrize(("a", "b"), [
    ("http://localhost:3000/fhir", "http://localhost:3001/fhir"),
    ("http://localhost:3000/fhir", "https://localhost:3000/fhir"),
    ("http://localhost:3000/fhir", "http://localhost:3000/FHIR"),  # paths are exact
    ("http://localhost:3000/fhir", "http://localhost:3000"),
    ("http://example.org/fhir", "http://127.0.0.1/fhir"),  # only loopback names merge
    ("http://127.0.0.2:3000/fhir", "http://localhost:3000/fhir"),
])
def test_not_same_url(a: str, b: str) -> None:
    assert not same_url(a, b)


def test_normal_url() -> None:
    assert normal_url("HTTP://127.0.0.1:8080/fhir/") == "http://localhost:8080/fhir"
    assert normal_url("https://a.example/b") == "https://a.example/b"


def test_any_same() -> None:
    accepted = ["http://localhost:3000/fhir", "api://fhir"]
    assert any_same(["http://127.0.0.1:3000/fhir"], accepted)
    assert any_same(["other", "api://fhir"], accepted)
    assert not any_same(["http://127.0.0.1:3001/fhir"], accepted)
    assert not any_same([], accepted)
    assert not any_same(["http://localhost:3000/fhir"], [])


def test_issued_token_claims_and_header(keys: SigningKeys) -> None:
    before = int(time.time())
    token, claims = issue_access_token(
        keys, issuer="http://h:1", audience="http://h:1/fhir", client_id="app",
        scope="patient/*.rs", ttl=300, patient="p1", encounter="e1",
        fhir_user="Practitioner/d1", extra={"tenant": "t"})
    header = jws.extract_compact(token.encode()).headers()
    assert header == {"alg": "RS256", "kid": "k-now", "typ": "at+jwt"}
    decoded = jwt.decode(token, keys.published, algorithms=["RS256"])
    assert decoded.claims == claims
    assert claims["iss"] == "http://h:1" and claims["aud"] == "http://h:1/fhir"
    assert claims["sub"] == "app" and claims["client_id"] == "app"
    assert claims["scope"] == "patient/*.rs"
    assert before <= claims["iat"] == claims["nbf"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 300
    assert (claims["patient"], claims["encounter"], claims["fhirUser"]) == (
        "p1", "e1", "Practitioner/d1")
    assert claims["tenant"] == "t"
    assert len(claims["jti"]) == 32


def test_optional_claims_are_left_out_and_jtis_differ(keys: SigningKeys) -> None:
    _, one = issue_access_token(keys, issuer="i", audience=["a", "b"], client_id="c",
                                scope="system/*.read", ttl=60, subject="user-1")
    _, two = issue_access_token(keys, issuer="i", audience="a", client_id="c",
                                scope="system/*.read", ttl=60)
    assert one["sub"] == "user-1" and one["aud"] == ["a", "b"]
    for name in ("patient", "encounter", "fhirUser"):
        assert name not in one
    assert one["jti"] != two["jti"]


def test_published_keys_have_no_private_parts() -> None:
    old = RSAKey.generate_key(2048, parameters={"kid": "k-old", "alg": ALG, "use": "sig"})
    keys = signing_keys(old)
    jwks = keys.jwks()
    assert [k["kid"] for k in jwks["keys"]] == ["k-now", "k-old"]
    for key in jwks["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
        assert key["kty"] == "RSA"
    assert keys.knows("k-old") and keys.knows("k-now")
    assert not keys.knows("k-other") and not keys.knows(None)
    assert keys.kid == "k-now"
