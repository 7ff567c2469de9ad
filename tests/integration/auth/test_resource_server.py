"""The resource server over HTTP (``AUTH_MODE=smart``, a real server process): who gets
in (401 for every kind of bad token, 403 for scopes that do not allow the interaction),
what query-restricted and write scopes admit, revocation, the loopback rule of
``AUTH_MODE=off`` and rate limits per verified client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from fhir_server.auth.verify import LEEWAY_SECONDS, REFRESH_SECONDS
from tests.conftest import ROOT, _free_port, run_token
from tests.integration.auth.conftest import (
    FHIR_JSON,
    Smart,
    claims_for,
    hs256_with_public_key,
    outcome_code,
    put,
    sign,
    start_smart,
    stranger_key,
    unsigned,
)

pytestmark = pytest.mark.xdist_group("auth-resource-server")

#: the same in every xdist worker of a run (test ids hold it), unique across runs
T = run_token()
P1, P2 = f"rs1-{T}", f"rs2-{T}"
LAB_1, VITAL_1, LAB_2 = f"lab1-{T}", f"vital1-{T}", f"lab2-{T}"
CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
CODE_SYSTEM = "urn:rs-test"


def observation(oid: str | None, patient: str, category: str,
                code: str = f"c-{T}") -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": CAT, "code": category}]}],
        "code": {"coding": [{"system": CODE_SYSTEM, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"}}
    if oid is not None:
        obs["id"] = oid
    return obs


@pytest.fixture(scope="module")
def loaded(smart: Smart, system_client: httpx.Client) -> Smart:
    for pid in (P1, P2):
        put(system_client, {"resourceType": "Patient", "id": pid,
                            "name": [{"family": f"Fam{pid}"}]})
    put(system_client, observation(LAB_1, P1, "laboratory"))
    put(system_client, observation(VITAL_1, P1, "vital-signs"))
    put(system_client, observation(LAB_2, P2, "laboratory"))
    return smart


def send(smart: Smart, token: str | None, method: str, path: str,
         body: Any = None, **headers: str) -> httpx.Response:
    head = {"Accept": FHIR_JSON, **headers}
    if token is not None:
        head["Authorization"] = f"Bearer {token}"
    if body is not None:
        head["Content-Type"] = FHIR_JSON
    return httpx.request(method, f"{smart.base}/{path}", json=body, headers=head,
                         timeout=30)


def assert_invalid_token(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="fhir", error="invalid_token"'), challenge
    assert outcome_code(answer) == "login"


def assert_forbidden(answer: httpx.Response) -> None:
    assert answer.status_code == 403, answer.text
    assert outcome_code(answer) == "forbidden"
    assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]


# -- no token --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "Patient/anything"), ("GET", "Patient"), ("GET", ""), ("GET", "_history"),
    ("POST", "Patient"), ("POST", ""), ("POST", "$reindex"), ("DELETE", "Patient/x"),
    ("GET", "Patient/x/_history"), ("GET", "Patient/x/Observation"),
    ("GET", "_jobs/1"),
])
def test_no_token_is_401_without_error_attribute(loaded: Smart, method: str,
                                                 path: str) -> None:
    body = {"resourceType": "Patient"} if method == "POST" and path == "Patient" else None
    answer = send(loaded, None, method, path, body)
    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="fhir"'
    assert outcome_code(answer) == "login"


def test_metadata_is_public(loaded: Smart) -> None:
    answer = send(loaded, None, "GET", "metadata")
    assert answer.status_code == 200
    assert answer.json()["resourceType"] == "CapabilityStatement"
    # a bad token changes nothing: nothing is verified there
    assert send(loaded, "garbage", "GET", "metadata").status_code == 200


def test_smart_configuration_is_public(loaded: Smart) -> None:
    answer = httpx.get(f"{loaded.base}/.well-known/smart-configuration", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_endpoint"] == f"{loaded.root}/auth/token"


def test_a_valid_token_gets_in(loaded: Smart) -> None:
    answer = send(loaded, loaded.token("system/*.read"), "GET", f"Patient/{P1}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == P1


def test_cli_token_gets_in(loaded: Smart) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["DATABASE_URL"] = loaded.database_url
    token = subprocess.run(
        [sys.executable, "-m", "fhir_server.cli", "token", "--scope", "patient/*.rs",
         "--patient", P1, "--aud", loaded.base], env=env, cwd=ROOT, capture_output=True,
        text=True, check=True, timeout=60).stdout.strip()
    assert send(loaded, token, "GET", f"Patient/{P1}").status_code == 200
    assert send(loaded, token, "GET", f"Patient/{P2}").status_code == 404


# -- bad tokens: 401 invalid_token -------------------------------------------------------------

Forge = Callable[[Smart], str]


def _expired(s: Smart) -> str:
    now = int(time.time())
    return sign(claims_for(s.base, "system/*.read") | {
        "iat": now - 3600, "nbf": now - 3600, "exp": now - LEEWAY_SECONDS - 5},
        s.keys.current)


def _not_yet_valid(s: Smart) -> str:
    now = int(time.time())
    return sign(claims_for(s.base, "system/*.read") | {
        "nbf": now + LEEWAY_SECONDS + 120, "exp": now + 3600}, s.keys.current)


def _no_exp(s: Smart) -> str:
    claims = claims_for(s.base, "system/*.read")
    del claims["exp"]
    return sign(claims, s.keys.current)


def _unknown_key(s: Smart) -> str:
    return sign(claims_for(s.base, "system/*.read"), stranger_key())


def _other_key_servers_kid(s: Smart) -> str:
    return sign(claims_for(s.base, "system/*.read"), stranger_key(), kid=s.keys.kid)


def _wrong_issuer(s: Smart) -> str:
    return sign(claims_for(s.base, "system/*.read") | {"iss": "http://evil.example"},
                s.keys.current)


def _wrong_audience(s: Smart) -> str:
    return sign(claims_for(s.base, "system/*.read") | {"aud": "http://other.example/fhir"},
                s.keys.current)


def _another_port(s: Smart) -> str:
    other = s.base.replace(s.root.rsplit(":", 1)[1], "1")
    return sign(claims_for(other, "system/*.read"), s.keys.current)


def _alg_none(s: Smart) -> str:
    return unsigned(claims_for(s.base, "system/*.*"), kid=s.keys.kid)


def _alg_none_no_kid(s: Smart) -> str:
    return unsigned(claims_for(s.base, "system/*.*"))


def _hs256_public_key(s: Smart) -> str:
    return hs256_with_public_key(claims_for(s.base, "system/*.*"), s.keys.current,
                                 s.keys.kid)


def _tampered(s: Smart) -> str:
    head, _, sig = s.token("patient/*.rs", patient=P1).split(".")
    body = unsigned(claims_for(s.base, "system/*.*")).split(".")[1]
    return f"{head}.{body}.{sig}"


FORGED: dict[str, Forge] = {
    "expired": _expired,
    "not-yet-valid": _not_yet_valid,
    "no-exp": _no_exp,
    "unknown-key": _unknown_key,
    "other-key-servers-kid": _other_key_servers_kid,
    "wrong-issuer": _wrong_issuer,
    "wrong-audience": _wrong_audience,
    "audience-another-port": _another_port,
    "alg-none": _alg_none,
    "alg-none-no-kid": _alg_none_no_kid,
    "hs256-public-key": _hs256_public_key,
    "tampered-claims": _tampered,
    "malformed": lambda s: "not-a-jwt",
    "malformed-3-parts": lambda s: "a.b.c",
    "malformed-base64": lambda s: "eyJhbGciOiJSUzI1NiJ9.%%%.xyz",
}


@pytest.mark.parametrize("kind", sorted(FORGED))
def test_bad_tokens_are_401_invalid_token(loaded: Smart, kind: str) -> None:
    assert_invalid_token(send(loaded, FORGED[kind](loaded), "GET", f"Patient/{P1}"))


@pytest.mark.parametrize("kind", ["alg-none", "hs256-public-key", "tampered-claims"])
def test_forged_admin_tokens_cannot_write(loaded: Smart, kind: str) -> None:
    answer = send(loaded, FORGED[kind](loaded), "PUT", f"Patient/{P1}",
                  {"resourceType": "Patient", "id": P1, "name": [{"family": "Forged"}]})
    assert_invalid_token(answer)


def test_basic_credentials_are_refused(loaded: Smart) -> None:
    answer = httpx.get(f"{loaded.base}/Patient/{P1}", auth=("user", "password"),
                       timeout=30)
    assert answer.status_code == 401
    # RFC 6750 3.1: an unsupported scheme counts as no credentials: no error code
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="fhir"'
    assert outcome_code(answer) == "login"


def test_revoked_token_is_refused_within_the_refresh_period(loaded: Smart) -> None:
    token = loaded.token("system/*.read")
    assert send(loaded, token, "GET", f"Patient/{P1}").status_code == 200
    jti = claims_of(token)["jti"]
    with psycopg.connect(loaded.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO auth_revoked_token (jti, expires_at) VALUES"
                     " (%s, now() + interval '1 hour')", (jti,))
    revoked_at = time.monotonic()
    while True:
        answer = send(loaded, token, "GET", f"Patient/{P1}")
        if answer.status_code != 200:
            break
        assert time.monotonic() - revoked_at < REFRESH_SECONDS + 3, "still accepted"
        time.sleep(0.25)
    assert_invalid_token(answer)
    assert "revoked" in answer.json()["issue"][0]["diagnostics"]
    # another token of the same client still works
    assert send(loaded, loaded.token("system/*.read"), "GET",
                f"Patient/{P1}").status_code == 200


def claims_of(token: str) -> dict[str, Any]:
    import base64
    import json

    part = token.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return result


# -- scopes: 403 -----------------------------------------------------------------------------


@pytest.mark.parametrize(("scope", "method", "path", "body"), [
    ("patient/Observation.rs", "POST", "Observation", observation(None, P1, "laboratory")),
    ("patient/Observation.rs", "PUT", f"Observation/{LAB_1}",
     observation(LAB_1, P1, "laboratory")),
    ("patient/Observation.rs", "DELETE", f"Observation/{LAB_1}", None),
    ("patient/Observation.rs", "GET", f"Patient/{P1}", None),
    ("user/Patient.read", "GET", f"Observation/{LAB_1}", None),
    ("user/Patient.read", "GET", "Observation", None),
    ("user/Patient.read", "GET", f"Patient/{P1}/Observation", None),
    ("user/Patient.read", "GET", "Observation/_history", None),
    ("user/Patient.read", "PUT", f"Patient/{P1}",
     {"resourceType": "Patient", "id": P1}),
    ("user/Patient.r", "GET", "Patient", None),  # read, not search
    ("user/Patient.s", "GET", f"Patient/{P1}", None),  # search, not read
    ("system/*.read", "POST", "$reindex", None),
    ("system/*.read", "POST", "Patient/$reindex", None),
    ("user/*.*", "POST", "$reindex", None),
    ("patient/*.*", "POST", "$reindex", None),
    ("system/*.rs system/*.cud", "POST", "$reindex", None),
    ("system/*.read", "GET", "AuditEvent", None),  # wildcards never reach the audit trail
    ("openid fhirUser", "GET", f"Patient/{P1}", None),
    ("patient/*.rs", "GET", "Patient", None),  # without a patient: nothing at all
])
def test_insufficient_scope_is_403(loaded: Smart, scope: str, method: str, path: str,
                                   body: dict[str, Any] | None) -> None:
    patient = P1 if scope.startswith("patient/") and scope != "patient/*.rs" else None
    assert_forbidden(send(loaded, loaded.token(scope, patient=patient), method, path, body))


def test_admin_scope_runs_reindex(loaded: Smart) -> None:
    answer = send(loaded, loaded.token("system/*.*"), "POST", "Patient/$reindex")
    assert answer.status_code == 202, answer.text
    job = answer.headers["Content-Location"].rsplit("/", 1)[1]
    assert send(loaded, loaded.token("system/*.cruds"), "GET",
                f"_jobs/{job}").status_code == 200
    # a reindex job is the admin's: others may neither see nor cancel it
    for method in ("GET", "DELETE"):
        assert_forbidden(send(loaded, loaded.token("system/*.read"), method, f"_jobs/{job}"))


# -- query-restricted scopes -----------------------------------------------------------------

LAB_ONLY = "patient/Observation.rs?category=laboratory"


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return sorted(e["resource"]["id"] for e in answer.json().get("entry", [])
                  if e.get("search", {}).get("mode", "match") != "outcome")


def test_query_restricted_scope_only_returns_lab_observations(loaded: Smart) -> None:
    token = loaded.token(LAB_ONLY, patient=P1)
    everything = ids(send(loaded, loaded.token("system/*.read"), "GET",
                          f"Observation?code={CODE_SYSTEM}|c-{T}"))
    assert everything == sorted([LAB_1, VITAL_1, LAB_2])
    assert ids(send(loaded, token, "GET", f"Observation?code={CODE_SYSTEM}|c-{T}")) == [
        LAB_1]
    assert ids(send(loaded, token, "GET", f"Observation?category={CAT}|vital-signs")) == []
    assert ids(send(loaded, token, "GET", f"Observation?subject=Patient/{P2}")) == []
    counted = send(loaded, token, "GET", f"Observation?code={CODE_SYSTEM}|c-{T}"
                                         "&_summary=count")
    assert counted.json()["total"] == 1


@pytest.mark.parametrize(("oid", "status"), [(LAB_1, 200), (VITAL_1, 404), (LAB_2, 404)])
def test_query_restricted_scope_reads(loaded: Smart, oid: str, status: int) -> None:
    token = loaded.token(LAB_ONLY, patient=P1)
    assert send(loaded, token, "GET", f"Observation/{oid}").status_code == status
    assert send(loaded, token, "GET", f"Observation/{oid}/_history/1").status_code == status


def test_user_query_restricted_scope_sees_every_patients_labs(loaded: Smart) -> None:
    token = loaded.token("user/Observation.rs?category=laboratory")
    assert ids(send(loaded, token, "GET", f"Observation?code={CODE_SYSTEM}|c-{T}")) == \
        sorted([LAB_1, LAB_2])


# -- write scopes ----------------------------------------------------------------------------

WRITER = "patient/Observation.cu"


def stored(loaded: Smart, query: str) -> list[str]:
    return ids(send(loaded, loaded.token("system/*.read"), "GET", f"Observation?{query}"))


def test_write_scope_creates_for_its_patient(loaded: Smart) -> None:
    code = f"w-own-{T}"
    answer = send(loaded, loaded.token(WRITER, patient=P1), "POST", "Observation",
                  observation(None, P1, "laboratory", code))
    assert answer.status_code == 201, answer.text
    assert stored(loaded, f"code={CODE_SYSTEM}|{code}") == [answer.json()["id"]]


def test_write_scope_cannot_create_for_another_patient(loaded: Smart) -> None:
    code = f"w-other-{T}"
    answer = send(loaded, loaded.token(WRITER, patient=P1), "POST", "Observation",
                  observation(None, P2, "laboratory", code))
    assert_forbidden(answer)
    assert stored(loaded, f"code={CODE_SYSTEM}|{code}") == []


def test_write_scope_cannot_create_by_update_for_another_patient(loaded: Smart) -> None:
    oid = f"w-put-{T}"
    answer = send(loaded, loaded.token(WRITER, patient=P1), "PUT", f"Observation/{oid}",
                  observation(oid, P2, "laboratory"))
    assert_forbidden(answer)
    assert send(loaded, loaded.token("system/*.read"), "GET",
                f"Observation/{oid}").status_code == 404


@pytest.mark.parametrize("subject", [P1, P2])
def test_write_scope_cannot_update_another_patients_observation(loaded: Smart,
                                                                subject: str) -> None:
    answer = send(loaded, loaded.token(WRITER, patient=P1), "PUT", f"Observation/{LAB_2}",
                  observation(LAB_2, subject, "laboratory", f"taken-{T}"))
    assert_forbidden(answer)
    now = send(loaded, loaded.token("system/*.read"), "GET", f"Observation/{LAB_2}").json()
    assert now["subject"]["reference"] == f"Patient/{P2}"
    assert now["meta"]["versionId"] == "1"


def test_write_scope_cannot_move_its_observation_to_another_patient(loaded: Smart) -> None:
    oid = f"w-move-{T}"
    token = loaded.token(WRITER, patient=P1)
    assert send(loaded, token, "PUT", f"Observation/{oid}",
                observation(oid, P1, "laboratory")).status_code == 201
    assert_forbidden(send(loaded, token, "PUT", f"Observation/{oid}",
                          observation(oid, P2, "laboratory")))
    now = send(loaded, loaded.token("system/*.read"), "GET", f"Observation/{oid}").json()
    assert now["subject"]["reference"] == f"Patient/{P1}"


def test_write_scope_conditional_update_does_not_reach_another_patient(
        loaded: Smart) -> None:
    answer = send(loaded, loaded.token(WRITER + " patient/Observation.rs", patient=P1),
                  "PUT", f"Observation?subject=Patient/{P2}&code={CODE_SYSTEM}|c-{T}",
                  observation(None, P2, "laboratory"))
    # B's match is hidden, so it would be a create, of an Observation for B: 403
    assert_forbidden(answer)
    now = send(loaded, loaded.token("system/*.read"), "GET", f"Observation/{LAB_2}").json()
    assert now["meta"]["versionId"] == "1"


# -- AUTH_MODE=off only on loopback ----------------------------------------------------------


def test_auth_off_on_every_interface_refuses_to_start(smart_database: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"DATABASE_URL": smart_database, "AUTH_MODE": "off", "LOG_FORMAT": "text"})
    proc = subprocess.run(
        [sys.executable, "-m", "fhir_server.cli", "serve", "--host", "0.0.0.0", "--port",
         str(_free_port()), "--workers", "1"], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert "refusing to start" in output and "AUTH_MODE=off" in output


# -- rate limits per verified client -----------------------------------------------------------


@pytest.fixture(scope="module")
def limited(smart_database: str, loaded: Smart) -> Iterator[Smart]:
    """A second server on the same database, 5 requests a minute, counted in-process."""
    yield from start_smart(smart_database, RATE_LIMIT_PER_MINUTE="5", REDIS_URL="")


def test_rate_limit_counts_per_verified_client(limited: Smart) -> None:
    client_id = f"app-{uuid.uuid4().hex[:8]}"
    # Forged tokens naming the client: refused, counted per address, never the client's.
    forged = unsigned(claims_for(limited.base, "system/*.read", client_id=client_id))
    statuses = [send(limited, forged, "GET", f"Patient/{P1}").status_code
                for _ in range(7)]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
    token = limited.token("system/*.read", client_id=client_id)
    answers = [send(limited, token, "GET", f"Patient/{P1}") for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    throttled = answers[5]
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert outcome_code(throttled) == "throttled"
    # another client has its own budget
    other = limited.token("system/*.read", client_id=f"other-{uuid.uuid4().hex[:8]}")
    assert send(limited, other, "GET", f"Patient/{P1}").status_code == 200


# -- a JavaScript SMART client (fhir-kit-client) ---------------------------------------------

JS = ROOT / "tests" / "js"


def test_js_client_discovers_the_smart_endpoints(loaded: Smart) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed: the fhir-kit-client test needs them")
    if not (JS / "node_modules" / "fhir-kit-client").is_dir():
        installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS,
                                   capture_output=True, text=True, timeout=300, check=False)
        if installed.returncode != 0:
            pytest.skip(f"npm ci failed (offline?): {installed.stderr[-500:]}")
    env = {**os.environ, "FHIR_BASE": loaded.base, "PATIENT_ID": P1,
           "FHIR_TOKEN": loaded.token("patient/Patient.rs", patient=P1)}
    proc = subprocess.run([node, "smart_metadata.mjs"], cwd=JS, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    issuer = loaded.root
    meta = out["smartAuthMetadata"]
    assert meta["authorizeUrl"] == f"{issuer}/auth/authorize"
    assert meta["tokenUrl"] == f"{issuer}/auth/token"
    assert meta["registerUrl"] == f"{issuer}/auth/register"
    uris = {e["url"]: e["valueUri"] for ext in out["security"]["extension"]
            if ext["url"].endswith("/oauth-uris") for e in ext["extension"]}
    assert uris["authorize"] == meta["authorizeUrl"] and uris["token"] == meta["tokenUrl"]
    assert out["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    config = out["smartConfiguration"]
    assert config["token_endpoint"] == meta["tokenUrl"]
    assert "S256" in config["code_challenge_methods_supported"]
    assert out["anonymousRead"] == 401
    assert out["read"] == {"resourceType": "Patient", "id": P1}
