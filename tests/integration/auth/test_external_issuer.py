"""Tokens of an external issuer (``AUTH_ISSUER``): an OpenID provider simulated by the
test (a thread serving its discovery document and JWKS, RS256 keys made here), its
tokens accepted with their scopes (``scope``, or Entra ID's ``scp``), a wrong ``iss``
refused, a key rotation picked up by a refetch, ``AUTH_JWKS_URL`` used as given, and the
JWKS shared through Redis."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import redis

from fhir_server.auth.jwks import REFETCH_SECONDS
from tests.integration.auth.conftest import FHIR_JSON, Smart, sign, start_smart, stranger_key

pytestmark = pytest.mark.xdist_group("auth-external-issuer")

AUDIENCE = f"api://fhir-{uuid.uuid4().hex[:8]}"


class Issuer:
    """A minimal OpenID provider: discovery and JWKS over HTTP, keys it signs with."""

    def __init__(self, discovery: bool = True) -> None:
        self.key = stranger_key(f"ext-{uuid.uuid4().hex[:8]}")
        self.published = [self.key]
        self.discovery = discovery
        self.hits: Counter[str] = Counter()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.hits[self.path] += 1
                body: Any = None
                if self.path == "/.well-known/openid-configuration" and issuer.discovery:
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks",
                            "token_endpoint": f"{issuer.url}/token"}
                elif self.path in ("/jwks", "/explicit/keys"):
                    body = {"keys": [k.as_dict(private=False) for k in issuer.published]}
                raw = json.dumps(body).encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def rotate(self) -> None:
        """A new signing key; the old one is no longer published."""
        self.key = stranger_key(f"ext-{uuid.uuid4().hex[:8]}")
        self.published = [self.key]

    def token(self, smart: Smart, ttl: int = 600, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.url, "aud": smart.base, "sub": "ext-user", "azp": "ext-app",
                "iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
        body.update(claims)
        return sign({k: v for k, v in body.items() if v is not None}, self.key)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def external(smart_database: str, issuer: Issuer) -> Iterator[Smart]:
    yield from start_smart(smart_database, AUTH_ISSUER=issuer.url, AUTH_AUDIENCE=AUDIENCE,
                           REDIS_URL="")


@pytest.fixture(scope="module")
def patient_id(external: Smart) -> str:
    pid = f"ext-{uuid.uuid4().hex[:8]}"
    with external.client(external.token("system/*.*")) as system:
        assert system.put(f"Patient/{pid}", json={"resourceType": "Patient", "id": pid},
                          headers={"Content-Type": FHIR_JSON}).status_code in (200, 201)
    return pid


def get(smart: Smart, token: str, path: str) -> httpx.Response:
    return httpx.get(f"{smart.base}/{path}", timeout=30, headers={
        "Authorization": f"Bearer {token}", "Accept": FHIR_JSON})


def test_scope_claim(external: Smart, issuer: Issuer, patient_id: str) -> None:
    token = issuer.token(external, scope="user/Patient.rs")
    answer = get(external, token, f"Patient/{patient_id}")
    assert answer.status_code == 200, answer.text
    assert get(external, token, "Observation").status_code == 403  # its scopes apply
    assert issuer.hits["/.well-known/openid-configuration"] >= 1
    assert issuer.hits["/jwks"] >= 1


def test_entra_style_scp_and_audience(external: Smart, issuer: Issuer,
                                      patient_id: str) -> None:
    token = issuer.token(external, aud=AUDIENCE, scp="system/Patient.rs", appid="entra-app",
                         azp=None)
    assert get(external, token, f"Patient/{patient_id}").status_code == 200
    assert get(external, token, "Encounter").status_code == 403
    listed = issuer.token(external, aud=AUDIENCE, scp=["system/Patient.rs"])
    assert get(external, listed, f"Patient/{patient_id}").status_code == 200


def test_built_in_tokens_still_work(external: Smart, patient_id: str) -> None:
    assert get(external, external.token("system/*.read"),
               f"Patient/{patient_id}").status_code == 200


@pytest.mark.parametrize("claims", [
    {"iss": "http://evil.example"},
    {"iss": None},
    {"iss": "built-in"},  # the server's own issuer, signed by the external key
    {"aud": "http://other.example/fhir"},
    {"exp": int(time.time()) - 3600},
], ids=["other-iss", "no-iss", "built-in-iss", "wrong-aud", "expired"])
def test_refused(external: Smart, issuer: Issuer, patient_id: str,
                 claims: dict[str, Any]) -> None:
    if claims.get("iss") == "built-in":
        claims = {"iss": external.root}
    token = issuer.token(external, scope="system/*.read", **claims)
    answer = get(external, token, f"Patient/{patient_id}")
    assert answer.status_code == 401, answer.text
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def test_a_key_the_issuer_does_not_publish(external: Smart, issuer: Issuer,
                                           patient_id: str) -> None:
    claims = {"iss": issuer.url, "aud": external.base, "exp": int(time.time()) + 600,
              "scope": "system/*.read"}
    answer = get(external, sign(claims, stranger_key()), f"Patient/{patient_id}")
    assert answer.status_code == 401


@pytest.mark.xdist_group("auth-external-rotation")
def test_key_rotation_is_picked_up_by_a_refetch(smart_database: str) -> None:
    """The issuer rotates: a token with the new kid is refused until the server may
    fetch again (at most every REFETCH_SECONDS), then accepted."""
    rotating = Issuer()
    try:
        for smart in start_smart(smart_database, AUTH_ISSUER=rotating.url, REDIS_URL=""):
            assert get(smart, rotating.token(smart, scope="system/*.read"),
                       "metadata").status_code == 200
            first = rotating.token(smart, scope="system/*.read")
            assert get(smart, first, "Patient?_count=1").status_code == 200
            fetched = rotating.hits["/jwks"]
            rotating.rotate()
            second = rotating.token(smart, scope="system/*.read")
            started = time.monotonic()
            while (status := get(smart, second, "Patient?_count=1").status_code) != 200:
                assert status == 401
                assert time.monotonic() - started < REFETCH_SECONDS + 10, "never refetched"
                time.sleep(1)
            assert rotating.hits["/jwks"] > fetched
            # made-up key ids do not make it hammer the issuer
            now = rotating.hits["/jwks"]
            for _ in range(5):
                claims = {"iss": rotating.url, "aud": smart.base, "scope": "system/*.read",
                          "exp": int(time.time()) + 600}
                assert get(smart, sign(claims, stranger_key(uuid.uuid4().hex)),
                           "Patient").status_code == 401
            assert rotating.hits["/jwks"] <= now + 1
    finally:
        rotating.close()


def test_explicit_jwks_url(smart_database: str) -> None:
    """AUTH_JWKS_URL is used as given: no discovery document is read."""
    plain = Issuer(discovery=False)
    try:
        for smart in start_smart(smart_database, AUTH_ISSUER=plain.url,
                                 AUTH_JWKS_URL=f"{plain.url}/explicit/keys", REDIS_URL=""):
            token = plain.token(smart, scope="system/*.read")
            assert get(smart, token, "Patient?_count=1").status_code == 200
            assert plain.hits["/explicit/keys"] >= 1
            assert plain.hits["/.well-known/openid-configuration"] == 0
    finally:
        plain.close()


def redis_url_or_skip() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("REDIS_URL is not set")
    try:
        with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as r:
            r.ping()
    except (redis.RedisError, OSError) as exc:
        pytest.skip(f"REDIS_URL not reachable: {exc}")
    return url


@pytest.mark.redis
def test_jwks_cached_in_redis_and_shared(smart_database: str) -> None:
    url = redis_url_or_skip()
    shared = Issuer()
    cache_key = f"fhir:jwks:{shared.url}"
    try:
        with redis.Redis.from_url(url) as r:
            for smart in start_smart(smart_database, AUTH_ISSUER=shared.url, REDIS_URL=url):
                assert get(smart, shared.token(smart, scope="system/*.read"),
                           "Patient?_count=1").status_code == 200
                raw = r.get(cache_key)
                assert raw is not None, f"no {cache_key} in Redis"
                assert [k["kid"] for k in json.loads(raw)["keys"]] == [shared.key.kid]
                assert 0 < r.ttl(cache_key) <= 600
            fetched = shared.hits["/jwks"]
            # another replica: the keys come from Redis, not from the issuer
            for smart in start_smart(smart_database, AUTH_ISSUER=shared.url, REDIS_URL=url):
                assert get(smart, shared.token(smart, scope="system/*.read"),
                           "Patient?_count=1").status_code == 200
            assert shared.hits["/jwks"] == fetched
            r.delete(cache_key)
    finally:
        shared.close()
