"""SMART Backend Services: client_credentials with a private_key_jwt assertion (RS384
with an inline JWKS, ES384 with a jwks_uri this test serves), refusals of replayed,
expired, misaddressed and wrongly signed assertions."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from fhir_server.auth.server.grants import JWKS_REFETCH_SECONDS
from fhir_server.auth.server.store import Store
from tests.integration.auth.conftest import Smart
from tests.integration.auth.server.conftest import add_client, token_request

pytestmark = pytest.mark.xdist_group("auth-server-backend")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def assertion(smart: Smart, client_id: str, key: Any, alg: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": f"{smart.root}/auth/token",
            "exp": now + 240, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, body, key,
                      algorithms=[alg])


def request_token(smart: Smart, signed: str, scope: str = "system/Patient.rs"
                  ) -> httpx.Response:
    return token_request(smart, {"grant_type": "client_credentials", "scope": scope,
                                 "client_assertion_type": ASSERTION_TYPE,
                                 "client_assertion": signed})


@pytest.fixture(scope="module")
def rsa_client(store: Store) -> tuple[str, RSAKey]:
    key = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "alg": "RS384"})
    jwks = KeySet([key]).as_dict(private=False)
    return add_client(store, "backend", "system/Patient.rs system/Observation.rs",
                      jwks=jwks).client_id, key


class _Jwks(BaseHTTPRequestHandler):
    document: bytes = b"{}"
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(type(self).document)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[tuple[str, type[_Jwks]]]:
    handler = type("Handler", (_Jwks,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", handler
    finally:
        server.shutdown()
        server.server_close()


def test_rs384_with_inline_jwks(smart: Smart, rsa_client: tuple[str, RSAKey]) -> None:
    client_id, key = rsa_client
    answer = request_token(smart, assertion(smart, client_id, key, "RS384"))
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["scope"] == "system/Patient.rs" and "refresh_token" not in token
    claims = jwt.decode(token["access_token"], KeySet.import_key_set(
        httpx.get(f"{smart.root}/auth/jwks").json())).claims
    assert claims["sub"] == client_id and claims["aud"] == smart.base
    with smart.client(token["access_token"]) as fhir:
        assert fhir.get("Patient").status_code == 200


def test_es384_with_jwks_uri(smart: Smart, store: Store,
                             jwks_server: tuple[str, type[_Jwks]]) -> None:
    url, handler = jwks_server
    key = ECKey.generate_key("P-384", parameters={"kid": "ec-1", "alg": "ES384"})
    handler.document = json.dumps(KeySet([key]).as_dict(private=False)).encode()
    client_id = add_client(store, "backend", "system/*.rs", jwks_uri=url).client_id
    answer = request_token(smart, assertion(smart, client_id, key, "ES384"))
    assert answer.status_code == 200, answer.text
    assert handler.hits >= 1
    # the client rotates its key: an unknown kid makes the server read jwks_uri again
    newer = ECKey.generate_key("P-384", parameters={"kid": "ec-2", "alg": "ES384"})
    handler.document = json.dumps(KeySet([key, newer]).as_dict(private=False)).encode()
    time.sleep(JWKS_REFETCH_SECONDS + 0.2)
    rotated = request_token(smart, assertion(smart, client_id, newer, "ES384"))
    assert rotated.status_code == 200, rotated.text


def test_replayed_jti_is_refused(smart: Smart, rsa_client: tuple[str, RSAKey]) -> None:
    client_id, key = rsa_client
    signed = assertion(smart, client_id, key, "RS384")
    assert request_token(smart, signed).status_code == 200
    again = request_token(smart, signed)
    assert again.status_code == 400 and again.json()["error"] == "invalid_client"


@pytest.mark.parametrize("claims", [
    {"exp": int(time.time()) - 120},                       # expired
    {"exp": int(time.time()) + 3600},                      # valid for too long
    {"aud": "https://elsewhere.example/token"},           # not this token endpoint
    {"iss": "someone-else"},                               # iss != sub
])
def test_bad_assertions_are_refused(smart: Smart, rsa_client: tuple[str, RSAKey],
                                    claims: dict[str, Any]) -> None:
    client_id, key = rsa_client
    answer = request_token(smart, assertion(smart, client_id, key, "RS384", **claims))
    assert answer.status_code in (400, 401), answer.text
    assert answer.json()["error"] == "invalid_client"


def test_wrong_key_algorithm_or_scope(smart: Smart, rsa_client: tuple[str, RSAKey]) -> None:
    client_id, key = rsa_client
    stranger = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "alg": "RS384"})
    forged = request_token(smart, assertion(smart, client_id, stranger, "RS384"))
    assert forged.status_code in (400, 401) and forged.json()["error"] == "invalid_client"
    same_key = RSAKey.import_key({k: v for k, v in key.as_dict(private=True).items()
                                  if k != "alg"})
    rs256 = request_token(smart, assertion(smart, client_id, same_key, "RS256"))
    assert rs256.status_code in (400, 401) and rs256.json()["error"] == "invalid_client"
    unknown = request_token(smart, assertion(smart, "nobody", key, "RS384"))
    assert unknown.status_code in (400, 401) and unknown.json()["error"] == "invalid_client"
    scope = request_token(smart, assertion(smart, client_id, key, "RS384"),
                          scope="system/Encounter.rs")
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    garbage = request_token(smart, "not-a-jwt")
    assert garbage.status_code in (400, 401) and garbage.json()["error"] == "invalid_client"
    grant = token_request(smart, {"grant_type": "password", "username": "x"})
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
