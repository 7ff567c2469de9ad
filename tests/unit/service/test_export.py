"""What a ``$export`` kick-off is understood as (no database: the searches are built,
not run), who may see a job, and what its manifest says."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_server.definitions import Definitions
from fhir_server.errors import BadRequest, Forbidden
from fhir_server.paths import data_dir
from fhir_server.runtime import build_search
from fhir_server.search.request import AnyOf, Clause
from fhir_server.service import export
from fhir_server.service.access import AccessRule, AccessScope
from fhir_server.service.compartment import load_compartments
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import Job
from fhir_server.settings import load_settings


@pytest.fixture(scope="module")
def ctx() -> ServiceContext:
    settings = load_settings(env={}, env_file=None)
    profiles = data_dir("profiles")
    definitions = Definitions.load(profiles)
    return ServiceContext(settings, None, None, definitions.resource_types,  # type: ignore[arg-type]
                          definitions, build_search(settings, definitions, profiles),
                          load_compartments(data_dir("search")), base_url="http://x/fhir")


@pytest.mark.parametrize("prefer", [None, "", "return=minimal", "respond-asyncx"])
def test_kick_off_needs_respond_async(prefer: str | None) -> None:
    with pytest.raises(BadRequest):
        export.wants_async(prefer)


@pytest.mark.parametrize("prefer", ["respond-async", "Respond-Async",
                                    "handling=strict, respond-async"])
def test_respond_async_is_found(prefer: str) -> None:
    export.wants_async(prefer)


def test_defaults_leave_out_the_audit_trail(ctx: ServiceContext) -> None:
    system = export.parse_request(ctx, None, "system", None, [])
    assert "AuditEvent" not in system.types and "Patient" in system.types
    assert "Practitioner" in system.types
    patient = export.parse_request(ctx, None, "patient", None, [])
    assert "Patient" in patient.types and "Observation" in patient.types
    assert "Practitioner" not in patient.types and "AuditEvent" not in patient.types
    named = export.parse_request(ctx, None, "system", None, [("_type", "AuditEvent")])
    assert named.types == ("AuditEvent",)


@pytest.mark.parametrize("pairs", [
    [("_type", "Nonsense")], [("_typeFilter", "Nonsense?x=1")],
    [("_outputFormat", "application/json")], [("_since", "2020-13")],
    [("_since", "2020"), ("_since", "2021")], [("includeAssociatedData", "x")],
    [("_typeFilter", "Patient?name=a,Patient?nosuch=1")], [("_typeFilter", "Patient?")],
    [("_typeFilter", "Patient?nosuch=1")], [("_typeFilter", "Patient?_sort=name")],
])
def test_malformed_kick_offs_are_400(ctx: ServiceContext, pairs: list[tuple[str, str]]
                                     ) -> None:
    with pytest.raises(BadRequest):
        export.parse_request(ctx, None, "system", None, pairs)


def test_type_filters_of_one_type_are_alternatives(ctx: ServiceContext) -> None:
    """Repeated and comma-joined queries of a type are ORed (the IG); a comma before
    anything but ``Type?`` belongs to the query's own values."""
    for pairs in ([("_typeFilter", "Patient?name=a"), ("_typeFilter", "Patient?name=b")],
                  [("_typeFilter", "Patient?name=a,Patient?name=b")]):
        request = export.parse_request(ctx, None, "system", None, pairs)
        assert request.filters == {"Patient": ["name=a", "name=b"]}
        [clause] = export.search(ctx, request, "Patient", ctx.parse_context()).clauses
        assert isinstance(clause, AnyOf) and len(clause.alternatives) == 2
    one = export.parse_request(ctx, None, "system", None,
                               [("_typeFilter", "Patient?gender=male,female")])
    assert one.filters == {"Patient": ["gender=male,female"]}


def test_a_type_outside_the_compartment_is_400_at_patient_level(ctx: ServiceContext
                                                                ) -> None:
    with pytest.raises(BadRequest, match="Practitioner"):
        export.parse_request(ctx, None, "patient", None, [("_type", "Practitioner")])


def test_scopes_narrow_the_types(ctx: ServiceContext) -> None:
    scope = AccessScope((AccessRule("Patient", permissions=frozenset("rs"),
                                    in_compartment=False),))
    assert export.parse_request(ctx, scope, "system", None, []).types == ("Patient",)
    with pytest.raises(Forbidden):
        export.parse_request(ctx, scope, "system", None, [("_type", "Patient,Observation")])
    none = AccessScope((AccessRule("Patient", permissions=frozenset("c")),))
    with pytest.raises(Forbidden):
        export.parse_request(ctx, none, "system", None, [])


def test_the_searches_carry_filter_since_and_population(ctx: ServiceContext) -> None:
    asked = export.parse_request(ctx, None, "group", "g1", [
        ("_type", "Observation"), ("_since", "2024-01-01"),
        ("_typeFilter", "Observation?status=final")])
    search = export.search(ctx, asked, "Observation", ctx.parse_context(), ("a", "b"))
    assert [c.name for c in search.clauses if isinstance(c, Clause)] == [
        "status", "_lastUpdated"]
    assert search.compartment is not None and search.compartment.owners == ("a", "b")
    system = export.search(ctx, export.parse_request(ctx, None, "system", None, []),
                           "Patient", ctx.parse_context())
    assert system.compartment is None and system.clauses == []
    everyone = export.search(ctx, export.parse_request(ctx, None, "patient", None, []),
                             "Patient", ctx.parse_context())
    assert everyone.compartment is not None and everyone.compartment.owners == ()


def test_same_request_same_client_same_scope_key(ctx: ServiceContext) -> None:
    one = export.parse_request(ctx, None, "system", None, [("_type", "Patient")])
    two = export.parse_request(ctx, None, "system", None, [("_type", "Patient")])
    assert export.job_scope(one, "c", "s") == export.job_scope(two, "c", "s")
    assert export.job_scope(one, "c", "s") != export.job_scope(one, "d", "s")
    assert export.job_scope(one, "c", "s") != export.job_scope(one, "c", "t")
    assert export.job_scope(one, "c", None).startswith("system/")


def _job(**params: Any) -> Job:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return Job(7, "export", params, "done", 0, 0, None, None, moment, moment)


def test_a_job_is_its_clients_or_the_admins() -> None:
    job = _job(client="a")
    scope = AccessScope()
    assert export.may_see(job, None, None)
    assert export.may_see(job, scope, "a")
    assert not export.may_see(job, scope, "b")
    assert export.may_see(job, replace(scope, admin=True), "b")


def test_manifest_names_the_files_through_the_server() -> None:
    job = _job(request="http://x/fhir/$export", outputs=[
        {"type": "Patient", "name": "Patient-1.ndjson", "key": "sha256/0", "size": 9,
         "count": 3}])
    assert export.manifest(job, "http://x/fhir", "T", True) == {
        "transactionTime": "T", "request": "http://x/fhir/$export",
        "requiresAccessToken": True,
        "output": [{"type": "Patient", "url": "http://x/fhir/_jobs/7/Patient-1.ndjson",
                    "count": 3}],
        "error": []}
