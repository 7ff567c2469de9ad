"""Every /fhir request of a SMART server is audited, with exact statuses and contents.

Reads, searches, creates, updates, deletes, a write the scope refuses (neither the
resource nor a success event is stored, the failure is), 401s, 403s, Bundles; the
AuditEvents themselves are append-only and need a scope naming them.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from tests.integration.audit.conftest import (
    AUDITOR_SCOPE,
    Server,
    agent,
    call,
    only,
    what,
)

pytestmark = pytest.mark.xdist_group("audit-smart")

PATIENT = {"resourceType": "Patient", "id": "ap1", "name": [{"family": "Audit"}]}
OTHER = {"resourceType": "Patient", "id": "ap2", "name": [{"family": "Other"}]}


def _obs(id: str, patient: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": id, "status": "final",
            "code": {"text": "weight"}, "subject": {"reference": f"Patient/{patient}"}}


@pytest.fixture(scope="module")
def loaded(smart: Server) -> Server:
    with smart.client("system/*.*") as c:
        for resource in (PATIENT, OTHER, _obs("ao1", "ap1"), _obs("ao2", "ap2")):
            answer = c.put(f"{resource['resourceType']}/{resource['id']}", json=resource)
            assert answer.status_code == 201, answer.text
    return smart


def test_read(loaded: Server) -> None:
    with loaded.client("patient/*.rs", patient="ap1", subject="u-1",
                       fhir_user="Practitioner/doc") as c:
        answer, request_id = call(c, "GET", "Observation/ao1")
    assert answer.status_code == 200
    event = only(loaded.events(request_id))
    assert event["subtype"][0]["code"] == "read"
    assert (event["action"], event["outcome"]) == ("R", "0")
    assert event["meta"]["profile"][0].endswith("IHE.BasicAudit.PatientRead")
    assert what(event, "4") == [{"reference": "Observation/ao1/_history/1"}]
    assert what(event, "1") == [{"reference": "Patient/ap1"}]
    user = agent(event, "UserOauthAgent")
    assert user["requestor"] is True
    assert user["who"]["reference"] == "Practitioner/doc"
    assert user["who"]["identifier"]["value"] == "u-1"
    client = agent(event, "110153")
    assert client["who"]["identifier"]["value"] == "tester"
    assert client["network"]["address"] == "127.0.0.1"
    assert client["requestor"] is False


def test_search(loaded: Server) -> None:
    query = "subject=Patient/ap1&status=final"
    with loaded.client("system/Observation.rs") as c:
        answer, request_id = call(c, "GET", f"Observation?{query}")
    assert answer.status_code == 200
    assert len(answer.json()["entry"]) == 1
    event = only(loaded.events(request_id))
    assert (event["subtype"][0]["code"], event["action"]) == ("search-type", "E")
    entity, = [e for e in event["entity"] if e.get("role", {}).get("code") == "24"]
    assert base64.b64decode(entity["query"]).decode() == query
    assert what(event, "1") == [{"reference": "Patient/ap1"}]
    assert agent(event, "110153")["requestor"] is True  # a backend client, no user


def test_create_update_delete(loaded: Server) -> None:
    with loaded.client("system/Observation.cud") as c:
        created, create_id = call(c, "POST", "Observation", json=_obs("x", "ap1"))
        assert created.status_code == 201
        new = created.json()["id"]
        changed = {**_obs(new, "ap1"), "status": "amended"}
        updated, update_id = call(c, "PUT", f"Observation/{new}", json=changed)
        assert updated.status_code == 200
        deleted, delete_id = call(c, "DELETE", f"Observation/{new}")
        assert deleted.status_code == 204
    for request_id, code, act, version in ((create_id, "create", "C", 1),
                                           (update_id, "update", "U", 2),
                                           (delete_id, "delete", "D", 3)):
        event = only(loaded.events(request_id))
        assert (event["subtype"][0]["code"], event["action"], event["outcome"]) == (
            code, act, "0")
        assert what(event, "4") == [{"reference": f"Observation/{new}/_history/{version}"}]
    assert what(only(loaded.events(create_id)), "1") == [{"reference": "Patient/ap1"}]


def test_write_refused_by_the_scope_stores_neither_resource_nor_success(
        loaded: Server) -> None:
    with loaded.client("patient/Observation.cru", patient="ap1") as c:
        refused, request_id = call(c, "PUT", "Observation/ao-out", json=_obs("ao-out", "ap2"))
    assert refused.status_code == 403
    event = only(loaded.events(request_id))
    assert (event["subtype"][0]["code"], event["outcome"]) == ("update", "4")
    assert event["outcomeDesc"].startswith("403: ")
    assert loaded.count("SELECT count(*) FROM resource WHERE resource_type = 'Observation'"
                        " AND id = 'ao-out'") == 0
    success = ('{"outcome": "0", "entity": [{"what": {"reference":'
               ' "Observation/ao-out/_history/1"}}]}')
    assert loaded.count("SELECT count(*) FROM resource WHERE resource_type = 'AuditEvent'"
                        " AND content @> %s::jsonb", success) == 0
    assert loaded.count("SELECT count(*) FROM audit_staging WHERE event::jsonb @> %s::jsonb",
                        success) == 0
    assert loaded.count("SELECT count(*) FROM resource_history WHERE id = 'ao-out'") == 0


def test_401_names_only_the_address(loaded: Server) -> None:
    with loaded.client() as c:
        answer, request_id = call(c, "GET", "Patient/ap1")
    assert answer.status_code == 401
    event = only(loaded.events(request_id))
    assert (event["subtype"][0]["code"], event["outcome"]) == ("read", "4")
    assert event["outcomeDesc"].startswith("401")
    client = agent(event, "110153")
    assert "who" not in client
    assert client["network"] == {"address": "127.0.0.1", "type": "2"}
    assert what(event, "1") == [{"reference": "Patient/ap1"}]


def test_403_of_the_router(loaded: Server) -> None:
    with loaded.client("system/Patient.r") as c:
        answer, request_id = call(c, "GET", "Observation/ao1")
    assert answer.status_code == 403
    event = only(loaded.events(request_id))
    assert (event["subtype"][0]["code"], event["outcome"]) == ("read", "4")
    assert agent(event, "110153")["who"]["identifier"]["value"] == "tester"


def test_metadata_is_not_audited(loaded: Server) -> None:
    with loaded.client() as c:
        answer, request_id = call(c, "GET", "metadata")
    assert answer.status_code == 200
    assert loaded.events(request_id) == []
    audit, = [r for r in answer.json()["rest"][0]["resource"] if r["type"] == "AuditEvent"]
    assert {i["code"] for i in audit["interaction"]} == {
        "read", "vread", "search-type", "create", "history-instance", "history-type"}


@pytest.mark.parametrize(("method", "url"), [
    ("PUT", "AuditEvent/x"), ("DELETE", "AuditEvent/x"), ("PATCH", "AuditEvent/x"),
    ("DELETE", "AuditEvent?outcome=0")])
def test_audit_events_cannot_change(loaded: Server, method: str, url: str) -> None:
    with loaded.client("system/AuditEvent.cruds") as c:
        body = {"resourceType": "AuditEvent", "id": "x"} if method == "PUT" else None
        answer, request_id = call(c, method, url, json=body)
    assert answer.status_code == 405
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert (only(loaded.events(request_id))["outcome"]) == "4"


def test_audit_events_need_a_scope_naming_them(loaded: Server) -> None:
    with loaded.client("system/*.*") as c:
        assert c.get("AuditEvent").status_code == 403
        assert c.post("AuditEvent", json={"resourceType": "AuditEvent"}).status_code == 403
    with loaded.client("system/*.*") as c:  # a read of ap1 of this test's own
        assert c.get("Patient/ap1").status_code == 200
    with loaded.client(AUDITOR_SCOPE) as c:
        # its event may still be staged: the mover makes it searchable within seconds
        deadline = time.monotonic() + 10
        while True:
            found = c.get("AuditEvent", params={"patient": "ap1", "subtype": "read"})
            assert found.status_code == 200
            if found.json().get("entry") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert found.json()["entry"]


def test_other_systems_may_record_events(loaded: Server) -> None:
    with loaded.client("system/AuditEvent.c", client_id="other-system") as c:
        answer, request_id = call(c, "POST", "AuditEvent", json={
            "resourceType": "AuditEvent", "recorded": "2026-01-01T00:00:00Z",
            "type": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                     "code": "110110"},
            "agent": [{"requestor": True, "who": {"display": "elsewhere"}}],
            "source": {"observer": {"display": "elsewhere"}}})
    assert answer.status_code == 201
    event = only(loaded.events(request_id))
    assert event["subtype"][0]["code"] == "create"
    assert what(event, "4") == [{"reference": f"AuditEvent/{answer.json()['id']}/_history/1"}]


def test_transaction_entries_and_bundle(loaded: Server) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "PUT", "url": "Observation/tx1"},
         "resource": _obs("tx1", "ap1")},
        {"request": {"method": "GET", "url": "Patient/ap1"}}]}
    with loaded.client("system/*.*") as c:
        answer, request_id = call(c, "POST", "", json=bundle)
    assert answer.status_code == 200
    events = loaded.events(request_id)
    codes = sorted((e["subtype"][0]["code"], e["outcome"]) for e in events)
    assert codes == [("read", "0"), ("transaction", "0"), ("update", "0")]


def test_failed_transaction_rolls_back_its_success_events(loaded: Server) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "PUT", "url": "Observation/tx-gone"},
         "resource": _obs("tx-gone", "ap1")},
        {"request": {"method": "PUT", "url": "Observation/tx-bad"},
         "resource": {"resourceType": "Observation", "id": "tx-bad", "status": "nope"}}]}
    with loaded.client("system/*.*") as c:
        answer, request_id = call(c, "POST", "", json=bundle)
    assert answer.status_code == 422
    events = loaded.events(request_id)
    assert all(e["outcome"] == "4" for e in events), events
    assert sorted(e["subtype"][0]["code"] for e in events) == [
        "transaction", "update", "update"]
    assert loaded.count("SELECT count(*) FROM resource WHERE id IN ('tx-gone', 'tx-bad')"
                        " AND resource_type = 'Observation'") == 0


def test_every_stored_version_has_its_event(loaded: Server) -> None:
    loaded.moved()
    missing = loaded.count(
        "SELECT count(*) FROM resource_history h WHERE h.resource_type <> 'AuditEvent'"
        " AND NOT EXISTS (SELECT 1 FROM resource a WHERE a.resource_type = 'AuditEvent'"
        " AND a.content @> jsonb_build_object('outcome', '0', 'entity', jsonb_build_array("
        "jsonb_build_object('what', jsonb_build_object('reference', h.resource_type || '/'"
        " || h.id || '/_history/' || h.version_id)))))")
    assert missing == 0


def test_wildcard_system_history_leaves_audit_events_out(loaded: Server) -> None:
    with loaded.client("system/*.*") as c:
        history = c.get("_history", params={"_count": "200"})
    assert history.status_code == 200
    types = {e["resource"]["resourceType"] for e in history.json()["entry"]
             if "resource" in e}
    assert "Patient" in types and "AuditEvent" not in types
