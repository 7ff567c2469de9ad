"""The BALP AuditEvent builder: codes, agents, entities, outcome; valid R4 throughout."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_server.audit import builder
from fhir_server.audit.builder import Facts, Target, build
from fhir_server.service.access import Caller
from fhir_server.validation import Validator

BASE = "http://fhir.example/fhir"
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
USER = Caller("app-1", user="u-7", fhir_user="Practitioner/9", patient="p1",
              issuer="https://as.example", scopes=("patient/*.rs", "openid"))


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator.load()


def _facts(**kw: Any) -> Facts:
    values: dict[str, Any] = {"interaction": "read", "status": 200, "request_id": "rq-1",
                              "server": BASE, "recorded": WHEN}
    values.update(kw)
    return Facts(**values)


def _by_type(event: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [a for a in event["agent"] if a["type"]["coding"][0]["code"] == code]


def _roles(event: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(e.get("role", e["type"])["code"], e.get("what")) for e in event["entity"]]


def test_read_by_a_user_follows_balp_patient_read(validator: Validator) -> None:
    event = build(_facts(caller=USER, address="10.0.0.5",
                         targets=[Target("Observation", "o1", 3)], patients=["p1"]), "e1")
    validator.validate(event)
    assert event["meta"]["profile"] == [
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"]
    assert event["type"] == {"system": builder.EVENT_TYPE, "code": "rest",
                             "display": "Restful Operation"}
    assert event["subtype"] == [{"system": builder.INTERACTION, "code": "read",
                                 "display": "read"}]
    assert (event["action"], event["outcome"]) == ("R", "0")
    assert event["recorded"] == "2026-01-02T03:04:05.678Z"
    assert "outcomeDesc" not in event
    user, = _by_type(event, "UserOauthAgent")
    assert user["requestor"] is True
    assert user["who"] == {"reference": "Practitioner/9",
                           "identifier": {"system": "https://as.example", "value": "u-7"}}
    client, = _by_type(event, "110153")
    assert client["requestor"] is False
    assert client["who"] == {"identifier": {"system": "https://as.example",
                                            "value": "app-1"}}
    assert client["network"] == {"address": "10.0.0.5", "type": "2"}
    server, = _by_type(event, "110152")
    assert server["who"] == {"display": BASE}
    assert event["source"]["observer"] == {"display": BASE}
    assert event["source"]["type"][0]["code"] == "4"
    assert _roles(event) == [
        ("4", {"reference": "Observation/o1/_history/3"}),
        ("1", {"reference": "Patient/p1"}),
        ("XrequestId", {"identifier": {"value": "rq-1"}}),
    ]


def test_backend_client_is_the_requestor() -> None:
    event = build(_facts(caller=Caller("svc", user="svc", scopes=("system/*.rs",))))
    assert not _by_type(event, "UserOauthAgent")
    client, = _by_type(event, "110153")
    assert client["requestor"] is True
    assert client["who"]["identifier"] == {"system": builder.LOCAL_SYSTEM, "value": "svc"}
    assert client["policy"] == ["system/*.rs"]


def test_refused_without_token_names_only_the_address(validator: Validator) -> None:
    event = build(_facts(status=401, address="192.0.2.1", targets=[Target("Patient", "x")],
                         outcome_desc="a Bearer token is required"))
    validator.validate(event)
    assert "meta" not in event  # BALP's profiles are of successful activities
    assert (event["outcome"], event["outcomeDesc"]) == ("4", "401: a Bearer token is required")
    client, = _by_type(event, "110153")
    assert client == {"type": client["type"], "requestor": True,
                      "network": {"address": "192.0.2.1", "type": "2"}}


@pytest.mark.parametrize(("interaction", "code", "act"), [
    ("create", "create", "C"), ("vread", "vread", "R"), ("update", "update", "U"),
    ("conditional-update", "update", "U"), ("patch", "patch", "U"),
    ("delete", "delete", "D"), ("conditional-delete", "delete", "D"),
    ("search-type", "search-type", "E"), ("search-compartment", "search", "E"),
    ("history-instance", "history-instance", "R"), ("operation", "operation", "E"),
])
def test_subtype_and_action(interaction: str, code: str, act: str) -> None:
    event = build(_facts(interaction=interaction))
    assert (event["subtype"][0]["code"], event["action"]) == (code, act)


@pytest.mark.parametrize(("status", "outcome"), [(200, "0"), (304, "0"), (403, "4"),
                                                 (404, "4"), (500, "8"), (503, "8")])
def test_outcome(status: int, outcome: str) -> None:
    assert build(_facts(status=status))["outcome"] == outcome


def test_search_records_the_raw_query(validator: Validator) -> None:
    query = "subject=Patient/p1&code=http://loinc.org|1234-5&_count=5"
    event = build(_facts(interaction="search-type", targets=[Target("Observation")],
                         query=query, patients=["p1"]))
    validator.validate(event)
    assert event["meta"]["profile"][0].endswith("IHE.BasicAudit.PatientQuery")
    entity, = [e for e in event["entity"] if e.get("role", {}).get("code") == "24"]
    assert base64.b64decode(entity["query"]).decode() == query
    assert entity["description"] == f"Observation?{query}"


def test_bundle_subtype() -> None:
    event = build(_facts(interaction="transaction/batch", bundle_type="transaction"))
    assert event["subtype"][0]["code"] == "transaction"
    assert "meta" not in event


def test_failed_copy_is_a_failure() -> None:
    ok = build(_facts(interaction="create", status=201, targets=[Target("Patient", "a", 1)]))
    bad = builder.failed(ok, 400, "entry[1] failed")
    assert (bad["outcome"], bad["outcomeDesc"]) == ("4", "400: rolled back: entry[1] failed")
    assert "meta" not in bad and "meta" in ok
