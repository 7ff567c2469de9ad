"""One interaction's facts -> one AuditEvent, following IHE BALP (no I/O here).

The Basic Audit Log Patterns (https://profiles.ihe.net/ITI/BALP/) describe a RESTful
interaction as: ``type`` rest, ``subtype`` the FHIR interaction, ``action`` C/R/U/D/E,
``recorded``, ``outcome``; agents for the client (DICOM "Source Role ID"), the user
(``UserOauthAgent``, the requestor) and this server ("Destination Role ID"); ``source``
this server; entities for the data touched (``Type/id/_history/vid``, role Domain
Resource), the query (base64 of the raw request, so even a malicious query is kept as
sent), the patient (type Person, role Patient) and the transport's request id
(``XrequestId``), which lets an operator join an event to the server's log lines.

Everything the event needs is in :class:`Facts`, so the trail (which knows the request)
and the tests (which do not) build events the same way.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fhir_server.service.access import Caller

BALP = "https://profiles.ihe.net/ITI/BALP"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
ACTION = "http://hl7.org/fhir/audit-event-action"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
USER_AGENT = f"{BALP}/CodeSystem/UserAgentTypes"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
BALP_ENTITY = f"{BALP}/CodeSystem/BasicAuditEntityType"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
#: identifier system of client ids and users when the token names no issuer
LOCAL_SYSTEM = "urn:fhir-server:local"

#: the route table's interaction -> the restful-interaction code (R4 has no code for a
#: compartment search or the conditional variants: they are searches and writes)
SUBTYPES = {
    "search-compartment": "search", "conditional-update": "update",
    "conditional-patch": "patch", "conditional-delete": "delete",
}
_DISPLAY = {"search": "search", "search-type": "search-type"}
#: restful-interaction code -> AuditEvent.action (BALP: queries are E, execute)
ACTIONS = {
    "create": "C", "read": "R", "vread": "R", "history-instance": "R", "update": "U",
    "patch": "U", "delete": "D",
}
#: BALP's profile by action, plain and Patient-specific (success events only: BALP's
#: profiles describe successful activities)
_PROFILES = {"C": "Create", "R": "Read", "U": "Update", "D": "Delete", "E": "Query"}


@dataclass(frozen=True, slots=True)
class Target:
    """A resource the interaction touched (``id`` None: the type as a whole)."""

    resource_type: str
    id: str | None = None
    version: int | None = None

    @property
    def reference(self) -> str | None:
        """``Type/id`` or ``Type/id/_history/vid``; None without an id."""
        if self.id is None:
            return None
        if self.version is None:
            return f"{self.resource_type}/{self.id}"
        return f"{self.resource_type}/{self.id}/_history/{self.version}"


@dataclass(slots=True)
class Facts:
    """What happened, in the terms of the event."""

    #: the route's interaction (``read``, ``search-type``, ``conditional-update``...)
    interaction: str
    status: int
    request_id: str
    #: the FHIR base this server answered on (observer and destination)
    server: str
    recorded: datetime = field(default_factory=lambda: datetime.now(UTC))
    caller: Caller | None = None
    #: the network address of the client (``ip:...`` stripped)
    address: str | None = None
    targets: Sequence[Target] = ()
    patients: Sequence[str] = ()
    #: the raw query (query string, or a ``_search`` form body) of a search
    query: str | None = None
    #: why it failed (an OperationOutcome's diagnostics)
    outcome_desc: str | None = None
    #: an operation's name (``$reindex``)
    operation: str | None = None
    #: ``batch`` or ``transaction`` for the Bundle interaction
    bundle_type: str | None = None


def subtype(interaction: str, bundle_type: str | None = None) -> str:
    """The restful-interaction code of a route's interaction."""
    if interaction == "transaction/batch":
        return bundle_type if bundle_type in ("batch", "transaction") else "batch"
    return SUBTYPES.get(interaction, interaction)


def action(code: str) -> str:
    """AuditEvent.action for a restful-interaction code."""
    return ACTIONS.get(code, "E")


def outcome(status: int) -> str:
    """0 success, 4 minor failure (4xx: the client's), 8 serious failure (5xx)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _identifier(system: str | None, value: str) -> dict[str, str]:
    return {"system": system or LOCAL_SYSTEM, "value": value}


def _agents(facts: Facts) -> list[dict[str, Any]]:
    """The client (with its address), the user when the token names one, this server."""
    caller = facts.caller
    network = ({"network": {"address": facts.address, "type": "2"}}
               if facts.address else {})
    user = None
    if caller is not None and (caller.fhir_user or (caller.user and
                                                    caller.user != caller.client_id)):
        who: dict[str, Any] = {}
        if caller.fhir_user:
            who["reference"] = caller.fhir_user
        if caller.user:
            who["identifier"] = _identifier(caller.issuer, caller.user)
        user = {"type": {"coding": [_coding(USER_AGENT, "UserOauthAgent",
                                            "User OAuth Agent participant")]},
                "who": who, "requestor": True}
        if caller.user:
            user["altId"] = caller.user
    client: dict[str, Any] = {
        "type": {"coding": [_coding(DICOM, "110153", "Source Role ID")]},
        "requestor": user is None, **network}
    if caller is not None:
        client["who"] = {"identifier": _identifier(caller.issuer, caller.client_id)}
        if caller.scopes:  # the grant the access was made under (policy is a uri)
            client["policy"] = [s for s in caller.scopes if s and " " not in s]
    server = {"type": {"coding": [_coding(DICOM, "110152", "Destination Role ID")]},
              "who": {"display": facts.server}, "requestor": False}
    return [a for a in (user, client, server) if a is not None]


def _entities(facts: Facts, code: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for target in facts.targets:
        reference = target.reference
        if reference is None:
            continue
        out.append({"what": {"reference": reference},
                    "type": _coding(ENTITY_TYPE, "2", "System Object"),
                    "role": _coding(OBJECT_ROLE, "4", "Domain Resource")})
    for patient in dict.fromkeys(facts.patients):
        out.append({"what": {"reference": f"Patient/{patient}"},
                    "type": _coding(ENTITY_TYPE, "1", "Person"),
                    "role": _coding(OBJECT_ROLE, "1", "Patient")})
    if facts.query is not None and action(code) == "E" and code.startswith(("search",
                                                                           "history")):
        entity: dict[str, Any] = {
            "type": _coding(ENTITY_TYPE, "2", "System Object"),
            "role": _coding(OBJECT_ROLE, "24", "Query"),
            "query": base64.b64encode(facts.query.encode()).decode()}
        types = {t.resource_type for t in facts.targets}
        if len(types) == 1:
            entity["description"] = f"{types.pop()}?{facts.query}"
        out.append(entity)
    if facts.operation:
        out.append({"type": _coding(ENTITY_TYPE, "2", "System Object"),
                    "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
                    "name": facts.operation})
    out.append({"what": {"identifier": {"value": facts.request_id}},
                "type": _coding(BALP_ENTITY, "XrequestId",
                                "transport specific unique identifier where http "
                                "X-Request-Id is used")})
    return out


def build(facts: Facts, id: str | None = None) -> dict[str, Any]:
    """The AuditEvent of one interaction (``id`` if the caller chose one already)."""
    code = subtype(facts.interaction, facts.bundle_type)
    act = action(code)
    result = outcome(facts.status)
    event: dict[str, Any] = {"resourceType": "AuditEvent"}
    if id is not None:
        event["id"] = id
    patients = bool(facts.patients)
    if result == "0" and code not in ("batch", "transaction", "operation"):
        name = ("Patient" if patients else "") + _PROFILES[act]
        event["meta"] = {"profile": [f"{BALP}/StructureDefinition/IHE.BasicAudit.{name}"]}
    event.update({
        "type": _coding(EVENT_TYPE, "rest", "Restful Operation"),
        "subtype": [_coding(INTERACTION, code, code)],
        "action": act,
        "recorded": _instant(facts.recorded),
        "outcome": result,
    })
    if result != "0" or facts.outcome_desc:
        event["outcomeDesc"] = (f"{facts.status}: {facts.outcome_desc}" if facts.outcome_desc
                                else str(facts.status))
    event["agent"] = _agents(facts)
    event["source"] = {"site": facts.server, "observer": {"display": facts.server},
                       "type": [_coding(SOURCE_TYPE, "4", "Application Server")]}
    event["entity"] = _entities(facts, code)
    return event


def failed(event: dict[str, Any], status: int, why: str) -> dict[str, Any]:
    """A copy of a success event as the failure it turned into (a transaction that
    rolled it back): outcome, outcomeDesc, and no BALP success profile."""
    out = dict(event)
    out.pop("meta", None)
    out["outcome"] = outcome(status)
    out["outcomeDesc"] = f"{status}: rolled back: {why}"
    return out


def _instant(moment: datetime) -> str:
    """A FHIR instant in UTC with milliseconds."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
