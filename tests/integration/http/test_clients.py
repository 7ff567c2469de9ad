"""Per client and per Host on a real ``fhir-server serve``: requests in flight
(MAX_IN_FLIGHT_PER_CLIENT, in process and through Redis) and trusted hosts."""

from __future__ import annotations

import random
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.conftest import running_server
from tests.integration.http.test_connections import connect, read_all

HELD = b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\n" \
       b"Content-Type: application/fhir+json\r\nContent-Length: 100\r\n\r\n{"


def held_request(base: str) -> socket.socket:
    """A request in flight until its socket closes: its body never ends."""
    conn = connect(base)
    conn.sendall(HELD)
    return conn


def until_refused(base: str) -> httpx.Response:
    """The first refused metadata read (the held request is admitted asynchronously)."""
    deadline = time.monotonic() + 5
    while True:
        answer = httpx.get(f"{base}/fhir/metadata", timeout=5)
        if answer.status_code != 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def until_admitted(base: str) -> httpx.Response:
    deadline = time.monotonic() + 5
    while True:
        answer = httpx.get(f"{base}/fhir/metadata", timeout=5)
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def exercise_in_flight(base: str) -> None:
    """One request in flight at most: the second waits for the first, released also when
    its client went away."""
    conn = held_request(base)
    try:
        refused = until_refused(base)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        issue = refused.json()["issue"][0]
        assert issue["code"] == "throttled"
        assert "MAX_IN_FLIGHT_PER_CLIENT" in issue["diagnostics"]
    finally:
        conn.close()  # the client goes away mid-body: its slot comes back
    assert until_admitted(base).status_code == 200
    # answered requests give their slot back: one after the other always fits
    assert [httpx.get(f"{base}/fhir/metadata", timeout=5).status_code
            for _ in range(5)] == [200] * 5


def test_in_flight_per_client_in_process(database_url: str) -> None:
    with running_server(database_url, MAX_IN_FLIGHT_PER_CLIENT="1",
                        BODY_TIMEOUT_SECONDS="20", REDIS_URL="") as base:
        exercise_in_flight(base)


@pytest.fixture
def private_redis_url() -> Iterator[str]:
    """REDIS_URL's server, on a database of its own (other test servers count the same
    client, 127.0.0.1, in database 0)."""
    from tests.integration.cache.support import redis_url_or_skip

    url = redis_url_or_skip().rsplit("/", 1)[0] + f"/{random.randint(5, 15)}"
    with redis.Redis.from_url(url) as r:
        r.delete("fhir:inflight:ip:127.0.0.1")
    yield url


def test_in_flight_per_client_through_redis(database_url: str,
                                            private_redis_url: str) -> None:
    with running_server(database_url, MAX_IN_FLIGHT_PER_CLIENT="1",
                        BODY_TIMEOUT_SECONDS="20", REDIS_URL=private_redis_url) as base, \
            redis.Redis.from_url(private_redis_url) as r:
        key = "fhir:inflight:ip:127.0.0.1"
        conn = held_request(base)
        try:
            assert until_refused(base).status_code == 429
            assert r.zcard(key) == 1
            assert 0 < r.pttl(key) <= 300_000  # a crashed worker's slots lapse
        finally:
            conn.close()
        assert until_admitted(base).status_code == 200
        # the slot is given back once the answer is sent: that may follow its last byte
        deadline = time.monotonic() + 5
        while r.zcard(key) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert r.zcard(key) == 0
        # Another replica's request counts here too: a slot taken in Redis directly.
        r.zadd(key, {"other-replica": time.time() * 1000 + 60_000})
        assert httpx.get(f"{base}/fhir/metadata", timeout=5).status_code == 429
        r.zrem(key, "other-replica")
        exercise_in_flight(base)


@pytest.fixture(scope="module")
def base(database_url: str) -> Iterator[str]:
    """A server without FHIR_BASE_URL and with the default ALLOWED_HOSTS."""
    with running_server(database_url, REDIS_URL="") as root:
        yield root


@pytest.mark.parametrize("path", ["/fhir/Patient", "/fhir/metadata",
                                  "/.well-known/openid-configuration",
                                  "/fhir/.well-known/smart-configuration"])
def test_a_host_not_allowed_is_400_on_every_linked_path(base: str, path: str) -> None:
    refused = httpx.get(f"{base}{path}", headers={"Host": "evil.example"}, timeout=5)
    assert refused.status_code == 400
    issue = refused.json()["issue"][0]
    assert issue["code"] == "invalid"
    assert "FHIR_BASE_URL" in issue["diagnostics"]
    assert "ALLOWED_HOSTS" in issue["diagnostics"]


def test_a_host_not_allowed_writes_nothing(base: str) -> None:
    patient = {"resourceType": "Patient", "id": "forged-host"}
    refused = httpx.put(f"{base}/fhir/Patient/forged-host", json=patient,
                        headers={"Host": "evil.example:3000"}, timeout=5)
    assert refused.status_code == 400
    assert "location" not in refused.headers
    assert httpx.get(f"{base}/fhir/Patient/forged-host", timeout=5).status_code == 404


def test_allowed_hosts_any_case_and_port_name_the_links(base: str) -> None:
    port = base.rsplit(":", 1)[1]
    created = httpx.post(f"{base}/fhir/Patient", json={"resourceType": "Patient"},
                         headers={"Host": f"LocalHost:{port}"}, timeout=5)
    assert created.status_code == 201
    assert created.headers["location"].lower().startswith(
        f"http://localhost:{port}/fhir/patient/")


def test_without_a_host_header_nothing_is_linked(base: str) -> None:
    with connect(base) as conn:
        conn.sendall(b"GET /fhir/metadata HTTP/1.0\r\n\r\n")
        answer = read_all(conn)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"is missing" in answer


def test_liveness_answers_any_host(base: str) -> None:
    assert httpx.get(f"{base}/api/v1/health", headers={"Host": "10.1.2.3:3000"},
                     timeout=5).status_code == 200


def test_with_fhir_base_url_links_ignore_the_host(database_url: str) -> None:
    configured = "https://fhir.example.org/r4/fhir"
    with running_server(database_url, FHIR_BASE_URL=configured, REDIS_URL="") as root:
        created = httpx.post(f"{root}/fhir/Patient", json={"resourceType": "Patient"},
                             headers={"Host": "evil.example"}, timeout=5)
        assert created.status_code == 201
        assert created.headers["location"].startswith(f"{configured}/Patient/")
        # a reference to the forged host's base is not local (the allowed one's is)
        # ids of this test's own: the worker's database is shared with other tests
        forged, allowed = (f"p{uuid.uuid4().hex[:12]}" for _ in range(2))
        for host, patient in (("evil.example", forged), (root.removeprefix("http://"), allowed)):
            linked = httpx.post(f"{root}/fhir/Observation", headers={"Host": host}, json={
                "resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "subject": {"reference": f"http://{host}/fhir/Patient/{patient}"}},
                timeout=5)
            assert linked.status_code == 201, linked.text
        found = [httpx.get(f"{root}/fhir/Observation", params={
            "subject": f"Patient/{p}", "_summary": "count"}, timeout=5).json()["total"]
            for p in (forged, allowed)]
        assert found == [0, 1]
