"""Shared pieces of the resource-server tests: a SMART server per module, tokens of its
built-in issuer, forged tokens of every kind a server must refuse, and a FHIR client.

Tokens are made in-process with the server's own signing keys (read from its database),
as ``fhir-server token`` makes them: the issuer is the FHIR base without ``/fhir``, the
audience the FHIR base.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from fhir_server.auth.keys import ALG, SigningKeys, read_keys
from fhir_server.auth.tokens import issue_access_token, issuer_for
from tests.conftest import running_server, scratch_database

FHIR_JSON = "application/fhir+json"


# -- forging -----------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(base: str, scope: str, ttl: int = 600, **more: Any) -> dict[str, Any]:
    """Claims of a token of the built-in issuer of ``base`` (the FHIR base)."""
    now = int(time.time())
    return {"iss": issuer_for(base), "aud": base, "sub": "tester", "client_id": "tester",
            "scope": scope, "iat": now, "nbf": now, "exp": now + ttl,
            "jti": uuid.uuid4().hex, **more}


def sign(claims: dict[str, Any], key: RSAKey, kid: str | None = None,
         alg: str = ALG) -> str:
    """``claims`` signed with ``key`` (its own kid unless ``kid`` says another)."""
    header = {"alg": alg, "kid": kid if kid is not None else str(key.kid), "typ": "at+jwt"}
    return jwt.encode(header, claims, key, algorithms=[alg])


def unsigned(claims: dict[str, Any], kid: str | None = None) -> str:
    """An ``alg: none`` token."""
    header: dict[str, Any] = {"alg": "none", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    return (f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.")


def hs256_with_public_key(claims: dict[str, Any], public: RSAKey, kid: str) -> str:
    """The classic confusion attack: HS256 keyed with the server's public key (PEM)."""
    pem = public.as_pem(private=False)
    header = {"alg": "HS256", "kid": kid, "typ": "JWT"}
    signing_input = (f"{b64(json.dumps(header).encode())}."
                     f"{b64(json.dumps(claims).encode())}")
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def stranger_key(kid: str = "stranger") -> RSAKey:
    """An RSA key the server does not know."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": ALG, "use": "sig"})


# -- a SMART server ------------------------------------------------------------------------


@dataclass
class Smart:
    """A running server with AUTH_MODE=smart, its database and its signing keys."""

    root: str  # http://127.0.0.1:PORT
    database_url: str
    keys: SigningKeys

    @property
    def base(self) -> str:
        """The FHIR base (the tokens' audience)."""
        return f"{self.root}/fhir"

    def token(self, scope: str, patient: str | None = None, ttl: int = 600,
              client_id: str = "tester", **extra: Any) -> str:
        token, _ = issue_access_token(
            self.keys, issuer=issuer_for(self.base), audience=self.base,
            client_id=client_id, scope=scope, ttl=ttl, patient=patient, extra=extra or None)
        return token

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Accept": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def smart_database(database_url: str) -> Iterator[str]:
    """A database of the module's own (its server migrates it)."""
    with scratch_database(database_url, "auth") as url:
        yield url


def start_smart(database_url: str, **env: str) -> Iterator[Smart]:
    """A SMART server on ``database_url`` (generator for fixtures)."""
    with running_server(database_url, AUTH_MODE="smart", **env) as root:
        yield Smart(root, database_url, read_keys(database_url))


@pytest.fixture(scope="module")
def smart(smart_database: str) -> Iterator[Smart]:
    """The module's SMART server."""
    yield from start_smart(smart_database)


@pytest.fixture(scope="module")
def system_client(smart: Smart) -> Iterator[httpx.Client]:
    """A client with a ``system/*.*`` token (loads data, checks what was stored)."""
    with smart.client(smart.token("system/*.*")) as c:
        yield c


def put(client: httpx.Client, resource: dict[str, Any]) -> dict[str, Any]:
    """PUT a resource under its id; the stored resource."""
    answer = client.put(f"{resource['resourceType']}/{resource['id']}", json=resource,
                        headers={"Content-Type": FHIR_JSON})
    assert answer.status_code in (200, 201), answer.text
    result: dict[str, Any] = answer.json()
    return result


def outcome_code(answer: httpx.Response) -> str:
    """The first issue's code of an OperationOutcome answer."""
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome", body
    return str(body["issue"][0]["code"])
