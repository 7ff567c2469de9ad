"""What one connection may cost a real ``fhir-server serve``: head size, head and body
timeouts, a flood of half-sent requests, the parser's refusals, MAX_CONNECTIONS."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import start_server


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A server with one-second head and body timeouts, without Redis."""
    proc, base = start_server(database_url, HEADER_TIMEOUT_SECONDS="1",
                              BODY_TIMEOUT_SECONDS="1", REDIS_URL="")
    try:
        yield proc, base
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture(scope="module")
def base(served: tuple[subprocess.Popen[bytes], str]) -> str:
    return served[1]


def connect(base: str, timeout: float = 10) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_all(conn: socket.socket) -> bytes:
    """Everything until the server closes."""
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    return answer


def outcome(answer: bytes) -> tuple[bytes, dict[str, object]]:
    """The head and the single issue of an OperationOutcome answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/fhir+json; charset=utf-8" in head
    resource = orjson.loads(body)
    assert resource["resourceType"] == "OperationOutcome"
    issue: dict[str, object] = resource["issue"][0]
    return head, issue


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_huge_header_is_431_at_once_and_never_buffered(
        served: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, base = served
    before = rss_kib(proc.pid)
    conn = connect(base)
    sent = 0

    def flood() -> None:  # 256 MB of one header, as the report had it
        nonlocal sent
        try:
            conn.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            chunk = b"a" * (1 << 20)
            for _ in range(256):
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server closed: what the test wants

    started = time.monotonic()
    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    answer = conn.recv(65536)
    elapsed = time.monotonic() - started
    conn.close()
    sender.join(10)
    head, issue = outcome(answer)
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close" in head
    assert issue["code"] == "too-long" and "MAX_HEADER_BYTES" in str(issue["diagnostics"])
    assert elapsed < 2
    assert sent < 64 << 20  # cut off long before the 256 MB were taken
    assert rss_kib(proc.pid) - before < 20_000
    assert httpx.get(f"{base}/api/v1/health", timeout=5).status_code == 200


def test_a_head_just_within_the_limit_is_answered(base: str) -> None:
    filler = "a" * (64 * 1024 - 200)
    answer = httpx.get(f"{base}/fhir/metadata", headers={"X-Filler": filler}, timeout=10)
    assert answer.status_code == 200


def test_a_request_line_past_the_limit_is_414(base: str) -> None:
    with connect(base) as conn:
        conn.sendall(b"GET /fhir/Patient?name=" + b"a" * 70_000)
        head, issue = outcome(read_all(conn))
    assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert issue["code"] == "too-long"
    assert "POST [base]/[type]/_search" in str(issue["diagnostics"])


def test_a_half_sent_head_is_408_after_the_header_timeout(base: str) -> None:
    with connect(base) as conn:
        conn.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        answer = read_all(conn)
        waited = time.monotonic() - started
    head, issue = outcome(answer)
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close" in head
    assert issue["code"] == "timeout" and "HEADER_TIMEOUT_SECONDS" in str(
        issue["diagnostics"])
    assert 0.8 < waited < 3


def test_a_silent_connection_is_closed_without_an_answer(base: str) -> None:
    with connect(base) as conn:
        started = time.monotonic()
        assert read_all(conn) == b""
        assert time.monotonic() - started < 3


def test_half_open_requests_do_not_slow_liveness_and_are_all_closed(base: str) -> None:
    sockets = []
    for n in range(200):
        conn = connect(base)
        conn.sendall(b"GET /fhir/Patient?n=%d HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: " % n)
        sockets.append(conn)
    try:
        opened = time.monotonic()
        slowest = 0.0
        with httpx.Client(timeout=5) as client:
            while time.monotonic() - opened < 0.7:
                started = time.monotonic()
                assert client.get(f"{base}/api/v1/health").status_code == 200
                slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.25
        statuses = set()
        for conn in sockets:
            answer = read_all(conn)
            statuses.add(answer.split(b"\r\n", 1)[0])
        assert statuses == {b"HTTP/1.1 408 Request Timeout"}
        assert time.monotonic() - opened < 4
    finally:
        for conn in sockets:
            conn.close()


def test_a_stalled_body_is_408_and_nothing_is_stored(base: str) -> None:
    patient = b'{"resourceType": "Patient", "id": "stalled-body"}'
    with connect(base) as conn:
        # A complete resource, then padding that never comes: acting on what arrived
        # would store the Patient.
        conn.sendall(b"PUT /fhir/Patient/stalled-body HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/fhir+json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (len(patient) + 10) + patient)
        started = time.monotonic()
        answer = read_all(conn)
        waited = time.monotonic() - started
    head, issue = outcome(answer)
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert issue["code"] == "timeout" and "BODY_TIMEOUT_SECONDS" in str(issue["diagnostics"])
    assert 0.8 < waited < 3
    assert httpx.get(f"{base}/fhir/Patient/stalled-body", timeout=5).status_code == 404


def test_a_slow_but_steady_body_is_taken(base: str) -> None:
    patient = b'{"resourceType": "Patient", "id": "steady-body"}'
    with connect(base) as conn:
        conn.sendall(b"PUT /fhir/Patient/steady-body HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/fhir+json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(patient))
        for i in range(0, len(patient), 16):  # 1.5 s in all, 0.5 s between chunks
            time.sleep(0.5)
            conn.sendall(patient[i:i + 16])
        answer = read_all(conn)
    assert answer.startswith(b"HTTP/1.1 201 ")


@pytest.mark.parametrize("request_bytes", [
    b"BREW /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
    b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\n",
], ids=["unknown method", "Content-Length not a number", "two Content-Lengths"])
def test_what_the_parser_refuses_is_a_400_operation_outcome(base: str,
                                                            request_bytes: bytes) -> None:
    with connect(base) as conn:
        conn.sendall(request_bytes)
        head, issue = outcome(read_all(conn))
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert issue["code"] == "structure"


def test_past_max_connections_a_503_but_liveness_answers(database_url: str) -> None:
    proc, base = start_server(database_url, MAX_CONNECTIONS="8", REDIS_URL="")
    try:
        idle = [connect(base) for _ in range(8)]
        try:
            time.sleep(0.2)
            refused = httpx.get(f"{base}/fhir/metadata", timeout=5)
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1"
            assert refused.headers["connection"] == "close"
            assert refused.json()["issue"][0]["code"] == "transient"
            assert httpx.get(f"{base}/api/v1/health", timeout=5).status_code == 200
        finally:
            for conn in idle:
                conn.close()
        time.sleep(0.2)
        assert httpx.get(f"{base}/fhir/metadata", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)
