"""A SMART server per module, tokens of its built-in issuer, and the events of a request.

Each request a test makes carries its own ``X-Request-ID``; once the mover has made
them resources (no staged event holds that id), its AuditEvents are found by that id
(``entity:identifier``, the BALP XrequestId entity) through the API itself, with a
token naming AuditEvent, so every test also shows the trail is searchable.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from fhir_server.auth.keys import SigningKeys, read_keys
from fhir_server.auth.tokens import issue_access_token, issuer_for
from tests.conftest import running_server, scratch_database

FHIR_JSON = "application/fhir+json"
AUDITOR_SCOPE = "system/AuditEvent.rs"


@dataclass
class Server:
    """A running server, its database and (AUTH_MODE=smart) its signing keys."""

    root: str
    database_url: str
    keys: SigningKeys | None = None

    @property
    def base(self) -> str:
        return f"{self.root}/fhir"

    def token(self, scope: str, patient: str | None = None, client_id: str = "tester",
              subject: str | None = None, fhir_user: str | None = None) -> str:
        assert self.keys is not None
        token, _ = issue_access_token(
            self.keys, issuer=issuer_for(self.base), audience=self.base,
            client_id=client_id, scope=scope, ttl=600, patient=patient, subject=subject,
            fhir_user=fhir_user)
        return token

    def client(self, scope: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
        if scope is not None:
            headers["Authorization"] = f"Bearer {self.token(scope, **kw)}"
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def moved(self, needle: str = "", seconds: float = 10.0) -> None:
        """Wait until no staged event holds ``needle`` (any staged event: ""): they
        are committed before the answer, so then the mover has made them resources."""
        deadline = time.monotonic() + seconds
        while self.count("SELECT count(*) FROM audit_staging WHERE strpos(event::text,"
                         " %s) > 0", needle):
            assert time.monotonic() < deadline, f"events of {needle!r} still staged"
            time.sleep(0.05)

    def events(self, request_id: str) -> list[dict[str, Any]]:
        """The AuditEvents of one request, oldest first (once the mover moved them)."""
        self.moved(request_id)
        with self.client(AUDITOR_SCOPE if self.keys else None) as c:
            found = c.get("AuditEvent", params={"entity:identifier": request_id,
                                                "_sort": "date", "_count": "100"})
        assert found.status_code == 200, found.text
        return [e["resource"] for e in found.json().get("entry", [])]

    def count(self, sql: str, *params: Any) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(sql, params).fetchone()
        assert row is not None
        return int(row[0])


def rid() -> str:
    """A fresh request id."""
    return f"t-{uuid.uuid4().hex}"


def call(client: httpx.Client, method: str, url: str, **kw: Any
         ) -> tuple[httpx.Response, str]:
    """A request with its own X-Request-ID; the response and that id."""
    request_id = rid()
    headers = {**kw.pop("headers", {}), "X-Request-ID": request_id}
    answer = client.request(method, url, headers=headers, **kw)
    assert answer.headers.get("x-request-id") == request_id
    return answer, request_id


def only(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The one event of a request."""
    assert len(events) == 1, [e.get("subtype") for e in events]
    return events[0]


def what(event: dict[str, Any], role: str) -> list[Any]:
    """The ``what`` of the event's entities with ``role`` (object-role code)."""
    return [e.get("what") for e in event["entity"] if e.get("role", {}).get("code") == role]


def agent(event: dict[str, Any], code: str) -> dict[str, Any]:
    found = [a for a in event["agent"] if a["type"]["coding"][0]["code"] == code]
    assert len(found) == 1, event["agent"]
    return found[0]


@pytest.fixture(scope="module")
def smart(database_url: str) -> Iterator[Server]:
    """The module's SMART server on a database of its own."""
    with scratch_database(database_url, "audit") as url, \
            running_server(url, AUTH_MODE="smart") as root:
        yield Server(root, url, read_keys(url))
