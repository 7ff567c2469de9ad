"""Starvation: 12 attacker threads send the slow vectors of issue 11 (expensive
searches, Bundles of searches, oversize bodies, amplifying patches, slow heads) while a
victim reads Patients by id and a prober asks for health. The victim's p95 and the
health p99 stay within generous bounds here; bench/attack.py measures the targets."""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from tests.conftest import scratch_database
from tests.integration.limits.conftest import MAX_RSS_BYTES, Server, capped_server

HEADERS = {"Content-Type": "application/fhir+json"}
ATTACKERS = 12
SECONDS = 6.0
VICTIM_P95_SECONDS = 0.5
HEALTH_P99_SECONDS = 0.5


def _attacks(base: str, port: int) -> list[Callable[[httpx.Client], object]]:
    searches = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient?name:contains=e&_count=1000"}}] * 100}
    return [
        lambda c: c.get("/Patient", params={"name:contains": "a", "_count": "1000",
                                            "_total": "accurate"}),
        lambda c: c.get("/Patient?" + "&".join(f"name=n{i}" for i in range(1000))),
        lambda c: c.get("/Patient?organization" + ".partof" * 200 + ".name=x"),
        lambda c: c.post("", content=orjson.dumps(searches), headers=HEADERS),
        lambda c: c.get("/_history", params={"_count": "1000"}),
        lambda c: c.post("/Patient", headers=HEADERS, content=b'{"resourceType":"Patient",'
                         b'"name":[{"text":"' + b"x" * (9 * 2 ** 20) + b'"}]}'),
        lambda c: c.patch("/Patient/victim-0", headers={
            "Content-Type": "application/json-patch+json"}, content=orjson.dumps(
                [{"op": "copy", "from": "/name", "path": "/name/-"}] * 21)),
        lambda c: _slow_head(port),
    ]


def _slow_head(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with contextlib.suppress(OSError):
            sock.recv(1)


def _quantile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q * 100) - 1]


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with scratch_database(database_url, "limits_starve") as url, \
            capped_server(url, HEADER_TIMEOUT_SECONDS="2", DB_POOL_MAX="6") as s:
        with httpx.Client(base_url=s.base, timeout=60) as c:
            entries = [{"request": {"method": "PUT", "url": f"Patient/victim-{n}"},
                        "resource": {"resourceType": "Patient", "id": f"victim-{n}",
                                     "name": [{"family": f"Victim{n}", "given": ["Eve"]}]}}
                       for n in range(2000)]
            answer = c.post("", headers=HEADERS, content=orjson.dumps(
                {"resourceType": "Bundle", "type": "transaction", "entry": entries}))
            assert answer.status_code == 200, answer.text[:300]
        yield s


def test_victim_reads_and_health_stay_fast_under_attack(server: Server) -> None:
    stop = threading.Event()
    attacks = _attacks(server.base, server.port)

    def attacker(n: int) -> None:
        with httpx.Client(base_url=server.base, timeout=30) as c:
            i = n
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    attacks[i % len(attacks)](c)
                i += 1

    threads = [threading.Thread(target=attacker, args=(n,), daemon=True)
               for n in range(ATTACKERS)]
    for t in threads:
        t.start()
    time.sleep(1)  # the attack is under way
    reads: list[float] = []
    health: list[float] = []
    errors: list[int] = []

    def prober() -> None:
        with httpx.Client(base_url=server.root, timeout=30) as c:
            while not stop.is_set():
                started = time.monotonic()
                status = c.get("/api/v1/health").status_code
                health.append(time.monotonic() - started)
                if status != 200:
                    errors.append(status)
                time.sleep(0.05)

    probe = threading.Thread(target=prober, daemon=True)
    probe.start()
    deadline = time.monotonic() + SECONDS
    with httpx.Client(base_url=server.base, timeout=30) as c:
        n = 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            status = c.get(f"/Patient/victim-{n % 2000}").status_code
            reads.append(time.monotonic() - started)
            if status != 200:
                errors.append(status)
            n += 1
    stop.set()
    probe.join(30)
    for t in threads:
        t.join(60)
    assert not errors, errors[:20]
    assert len(reads) >= 20
    assert _quantile(reads, 0.95) <= VICTIM_P95_SECONDS, sorted(reads)[-10:]
    assert _quantile(health, 0.99) <= HEALTH_P99_SECONDS, sorted(health)[-10:]
    assert server.peak_rss() <= MAX_RSS_BYTES
