"""AUTH_MODE=off still records events (the agent is the network address); AUDIT=false
records none."""

from __future__ import annotations

import pytest

from tests.conftest import running_server, scratch_database
from tests.integration.audit.conftest import Server, agent, call, only, what

pytestmark = pytest.mark.xdist_group("audit-settings")

_EVENTS = "SELECT count(*) FROM resource WHERE resource_type = 'AuditEvent'"


def test_auth_off_is_audited_and_audit_false_is_not(database_url: str) -> None:
    with scratch_database(database_url, "auditoff") as url:
        with running_server(url) as root:  # AUTH_MODE=off
            server = Server(root, url)
            with server.client() as c:
                created = c.put("Patient/off1", json={"resourceType": "Patient",
                                                      "id": "off1"})
                assert created.status_code == 201
                answer, request_id = call(c, "GET", "Patient/off1")
            assert answer.status_code == 200
            event = only(server.events(request_id))
            client = agent(event, "110153")
            assert client == {"type": client["type"], "requestor": True,
                              "network": {"address": "127.0.0.1", "type": "2"}}
            assert what(event, "1") == [{"reference": "Patient/off1"}]
        server.moved()  # the server drained what it staged when it stopped
        before = server.count(_EVENTS)
        with running_server(url, AUDIT="false") as root:
            server = Server(root, url)
            with server.client() as c:
                assert c.get("Patient/off1").status_code == 200
                assert c.put("Patient/off1", json={"resourceType": "Patient", "id": "off1",
                                                   "active": True}).status_code == 200
                assert c.get("Patient/nope").status_code == 404
                assert c.delete("AuditEvent/x").status_code == 405  # still append-only
        assert server.count(_EVENTS) == before
        assert server.count("SELECT count(*) FROM audit_staging") == 0
