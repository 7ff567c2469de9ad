"""Connection-level limits on a real server: a head sent too slowly (slowloris) or a
body that stops is closed after HEADER_TIMEOUT_SECONDS / BODY_TIMEOUT_SECONDS (408);
requests in flight past MAX_IN_FLIGHT_PER_CLIENT get 429 with Retry-After; connections
past MAX_CONNECTIONS get 503."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from tests.conformance.hostile.conftest import read_response
from tests.integration.limits.conftest import Server, capped_server


@pytest.fixture(scope="module")
def server(migrated_url: str) -> Iterator[Server]:
    with capped_server(migrated_url, HEADER_TIMEOUT_SECONDS="1", BODY_TIMEOUT_SECONDS="2",
                       MAX_IN_FLIGHT_PER_CLIENT="2") as s:
        yield s


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _closed_within(sock: socket.socket, seconds: float) -> tuple[float, bytes]:
    """Reads until the server closes; (seconds it took, what it sent)."""
    started, data = time.monotonic(), b""
    sock.settimeout(seconds)
    while chunk := sock.recv(65536):
        data += chunk
    return time.monotonic() - started, data


def _status(data: bytes) -> int:
    return int(data.split(b"\r\n", 1)[0].split()[1])


def test_slowloris_head_is_closed_after_the_header_timeout(server: Server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        took, data = _closed_within(sock, 5)
    assert took < 3
    if data:  # a 408 before closing is allowed; nothing else
        assert _status(data) == 408


def test_slowloris_trickle_is_closed_after_the_header_timeout(server: Server) -> None:
    """One header byte a half second keeps no connection past the head's deadline."""
    started = time.monotonic()
    with _connect(server) as sock:
        sock.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        try:
            for _ in range(20):
                sock.sendall(b"X")
                time.sleep(0.5)
                if time.monotonic() - started > 8:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        else:
            _closed_within(sock, 5)
    # the head's deadline (1 s), then at most the 2 s the refusal lingers to be read
    # (and slack for a busy machine): far less than the 10 s the trickle would take
    assert time.monotonic() - started < 6.5


def test_stalled_body_is_408_and_closed(server: Server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{")
        took, data = _closed_within(sock, 8)
    assert took < 5
    assert _status(data) == 408
    assert b'"OperationOutcome"' in data


def test_requests_in_flight_past_the_limit_are_429(server: Server) -> None:
    """Two bodies still arriving hold the client's two slots; a third request waits for
    none: 429 throttled with Retry-After."""
    slow = [_connect(server) for _ in range(2)]
    try:
        for sock in slow:
            sock.sendall(b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/fhir+json\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.3)
        with _connect(server) as sock:
            sock.sendall(b"GET /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Connection: close\r\n\r\n")
            response = read_response(sock)
    finally:
        for sock in slow:
            sock.close()
    assert response.status == 429, response.body[:300]
    assert int(response.headers["retry-after"]) >= 1
    assert orjson.loads(response.body)["issue"][0]["code"] == "throttled"


def test_connections_past_max_connections_are_503(migrated_url: str) -> None:
    with capped_server(migrated_url, MAX_CONNECTIONS="5") as s:
        held = [_connect(s) for _ in range(5)]
        try:
            time.sleep(0.2)
            with _connect(s) as sock:
                sock.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Connection: close\r\n\r\n")
                response = read_response(sock)
        finally:
            for sock in held:
                sock.close()
    assert response.status == 503
