"""Hostile input: every refusal is the status the limit's row in docs/operations.md
(## Limits) names, an OperationOutcome with the expected issue code, and stores nothing.

The cases run against the conformance suite's ``server`` (default settings, one
worker); the ones about connections run against servers of their own with small
limits. ``raw`` sends bytes a well-behaved client library refuses to send (bad request
lines, dot segments, oversize URLs and heads).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import psycopg
import pytest

FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON}


@dataclass(frozen=True)
class RawResponse:
    """A response read off a socket: status, lower-cased headers, body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def read_response(sock: socket.socket) -> RawResponse:
    """One response off ``sock`` (read until the server closes or the body is complete)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return RawResponse(status, headers, body[:length])
    while chunk := sock.recv(65536):
        body += chunk
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return RawResponse(status, headers, body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


Raw = Callable[[bytes], RawResponse]


@pytest.fixture(scope="session")
def raw(server: str) -> Raw:
    """Sends a whole request (bytes as given) on a new connection; its response."""
    parts = urlsplit(server)

    def send(request: bytes) -> RawResponse:
        with socket.create_connection((parts.hostname, parts.port), timeout=15) as sock:
            sock.sendall(request)
            return read_response(sock)

    return send


@pytest.fixture(scope="session")
def host(server: str) -> str:
    """The Host header the server is reached by."""
    return urlsplit(server).netloc


@pytest.fixture(scope="session")
def fhir(server: str) -> Iterator[httpx.Client]:
    """A plain HTTP client of the FHIR base (no Bundle wrapping: these are wire cases)."""
    with httpx.Client(base_url=f"{server}/fhir", timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def root(server: str) -> Iterator[httpx.Client]:
    """A client of the server's root (/api, /auth)."""
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def stored(database_url: str) -> Iterator[Callable[[], int]]:
    """Counts every stored version but AuditEvents (which record refusals too)."""
    conn = psycopg.connect(database_url, autocommit=True)

    def count() -> int:
        row = conn.execute("SELECT count(*) FROM resource_history"
                           " WHERE resource_type <> 'AuditEvent'").fetchone()
        assert row is not None
        return int(row[0])

    try:
        yield count
    finally:
        conn.close()


def outcome_code(body: bytes) -> str:
    """The first issue code of an OperationOutcome body (AssertionError if it is none)."""
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise AssertionError(f"not JSON: {body[:200]!r}") from None
    assert isinstance(resource, dict), resource
    assert resource.get("resourceType") == "OperationOutcome", resource
    return str(resource["issue"][0]["code"])


def assert_refused(status: int, headers: Any, body: bytes, expected_status: int,
                   expected_code: str) -> None:
    """The answer is ``expected_status`` with an OperationOutcome naming ``expected_code``."""
    summary = body[:300]
    assert status == expected_status, f"{status} (expected {expected_status}): {summary!r}"
    assert headers["content-type"].startswith(FHIR_JSON), headers
    assert outcome_code(body) == expected_code, summary


@dataclass(frozen=True)
class Case:
    """One hostile request and the refusal it must get."""

    id: str
    method: str
    path: str
    status: int
    code: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client: httpx.Client) -> httpx.Response:
        headers = dict(self.headers)
        if self.body is not None:
            headers.setdefault("Content-Type", FHIR_JSON)
        return client.request(self.method, self.path, content=self.body, headers=headers)


def check(case: Case, client: httpx.Client, stored: Callable[[], int]) -> httpx.Response:
    """Send ``case``; assert its refusal and that nothing was stored."""
    before = stored()
    response = case.send(client)
    assert_refused(response.status_code, response.headers, response.content, case.status,
                   case.code)
    assert stored() == before, "a refused request stored something"
    return response


def params(cases: list[Case]) -> Any:
    """``cases`` as pytest params named by their ids."""
    return [pytest.param(c, id=c.id) for c in cases]


def bundle(kind: str, entries: list[dict[str, Any]]) -> bytes:
    """A batch or transaction Bundle of ``entries``."""
    return orjson.dumps({"resourceType": "Bundle", "type": kind, "entry": entries})
