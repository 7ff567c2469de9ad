"""SMART scopes as an AccessScope: parsing (v1, v2, query restrictions, contexts) and
what the resulting rules permit, restrict and show. No database: the service context is
built over a pool that is never opened."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhir_server.auth.scopes import ResourceScope, access_scope, resource_scopes
from fhir_server.runtime import build_context
from fhir_server.service.access import (
    ALL_PERMISSIONS,
    NOT_IN_WILDCARDS,
    READ_PERMISSIONS,
    AccessRule,
    AccessScope,
)
from fhir_server.service.context import ServiceContext
from fhir_server.settings import load_settings
from fhir_server.storage.pool import make_pool


@pytest.fixture(scope="module")
def ctx() -> Iterator[ServiceContext]:
    settings = load_settings({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
                             env_file=None)
    yield build_context(settings, make_pool(settings))


# -- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(("granted", "context", "rtype", "permissions"), [
    ("patient/Observation.read", "patient", "Observation", "rs"),
    ("patient/Observation.write", "patient", "Observation", "cud"),
    ("user/Patient.*", "user", "Patient", "cruds"),
    ("system/*.read", "system", None, "rs"),
    ("system/*.*", "system", None, "cruds"),
    ("patient/Observation.rs", "patient", "Observation", "rs"),
    ("patient/Observation.cruds", "patient", "Observation", "cruds"),
    ("user/Encounter.cu", "user", "Encounter", "cu"),
    ("user/Encounter.d", "user", "Encounter", "d"),
    ("system/Patient.s", "system", "Patient", "s"),
    ("patient/*.r", "patient", None, "r"),
])
def test_one_scope_parses(granted: str, context: str, rtype: str | None,
                          permissions: str) -> None:
    assert resource_scopes(granted) == [
        ResourceScope(context, rtype, frozenset(permissions))]


@pytest.mark.parametrize("granted", [
    "patient/Observation.sr",  # v2 letters out of order
    "patient/Observation.rsc",
    "patient/Observation.",  # no permission at all
    "patient/Observation.rw",
    "patient/Observation.readwrite",
    "patient/observation.rs",  # not a type name
    "group/Patient.rs",  # no such context
    "Observation.rs",
    "patient/Observation",
    "launch", "launch/patient", "openid", "fhirUser", "offline_access", "online_access",
    "",
])
def test_not_resource_scopes(granted: str) -> None:
    assert resource_scopes(granted) == []


def test_space_separated_and_lists() -> None:
    text = "openid fhirUser launch/patient patient/Observation.rs user/Patient.read"
    parsed = resource_scopes(text)
    assert [(s.context, s.resource_type) for s in parsed] == [
        ("patient", "Observation"), ("user", "Patient")]
    assert resource_scopes(text.split()) == parsed
    assert resource_scopes(tuple(text.split())) == parsed


def test_query_restrictions_are_kept_in_order() -> None:
    [scope] = resource_scopes("patient/Observation.rs?category=laboratory&status=final")
    assert scope.permissions == frozenset("rs")
    assert scope.query == (("category", "laboratory"), ("status", "final"))
    [scope] = resource_scopes(
        "patient/Observation.rs?code=http://loinc.org%7C1234-5")
    assert scope.query == (("code", "http://loinc.org|1234-5"),)


# -- what a token's scopes become ------------------------------------------------------------


def only_rule(scope: AccessScope) -> AccessRule:
    assert len(scope.rules) == 1, scope.rules
    return scope.rules[0]


def test_patient_scope_is_narrowed_to_the_patients_compartment(
        ctx: ServiceContext) -> None:
    scope = access_scope(ctx, "patient/Observation.rs", "p1")
    rule = only_rule(scope)
    assert (rule.resource_type, rule.permissions, rule.in_compartment) == (
        "Observation", frozenset("rs"), True)
    assert scope.compartment is not None
    assert (scope.compartment.owner_type, scope.compartment.owner_id) == ("Patient", "p1")
    assert not scope.admin


@pytest.mark.parametrize("context", ["user", "system"])
def test_user_and_system_scopes_are_not_narrowed(ctx: ServiceContext, context: str) -> None:
    scope = access_scope(ctx, f"{context}/Patient.read", "p1")
    rule = only_rule(scope)
    assert not rule.in_compartment
    assert scope.compartment is None  # no patient/ scope: the launch patient is moot
    assert not scope.restricts("Patient")


def test_mixed_contexts_keep_the_compartment_for_patient_rules_only(
        ctx: ServiceContext) -> None:
    scope = access_scope(ctx, "patient/Observation.rs user/Organization.rs", "p1")
    assert scope.compartment is not None
    by_type = {r.resource_type: r for r in scope.rules}
    assert by_type["Observation"].in_compartment
    assert not by_type["Organization"].in_compartment
    assert scope.restricts("Observation")
    assert not scope.restricts("Organization")


@pytest.mark.parametrize("granted", [
    "patient/Observation.rs", "patient/*.read", "patient/*.*", "patient/Patient.cruds"])
def test_patient_scopes_without_a_patient_grant_nothing(ctx: ServiceContext,
                                                        granted: str) -> None:
    scope = access_scope(ctx, granted, None)
    assert scope.rules == ()
    assert scope.compartment is None
    for letter in "cruds":
        assert not scope.permits(letter)
        assert not scope.permits(letter, "Observation")


@pytest.mark.parametrize("granted", [
    "patient/Foo.rs", "user/NotAType.read", "system/Observationx.*",
    "patient/Observation.rs?foo=bar",  # a restriction not understood
    "patient/Observation.rs?date=not-a-date",  # nor one whose value is wrong
    "system/*.*?_tag=x",  # criteria on a wildcard: no type to understand them by
])
def test_scopes_that_grant_nothing_are_left_out(ctx: ServiceContext, granted: str) -> None:
    scope = access_scope(ctx, granted, "p1")
    assert scope.rules == ()
    assert not scope.admin
    assert not scope.permits("r")


def test_a_scope_left_out_does_not_drop_the_others(ctx: ServiceContext) -> None:
    scope = access_scope(ctx, "patient/Foo.rs user/Patient.rs launch openid", "p1")
    assert [r.resource_type for r in scope.rules] == ["Patient"]


def test_query_restriction_becomes_criteria(ctx: ServiceContext) -> None:
    scope = access_scope(ctx, "patient/Observation.rs?category=laboratory&status=final",
                         "p1")
    rule = only_rule(scope)
    assert rule.resource_type == "Observation"
    assert [c.name for c in rule.criteria] == ["category", "status"]
    assert rule.in_compartment
    assert scope.permits("r", "Observation") and scope.permits("s", "Observation")
    assert not scope.permits("c", "Observation")
    assert scope.restricts("Observation")


def test_user_query_restriction_still_restricts(ctx: ServiceContext) -> None:
    scope = access_scope(ctx, "user/Observation.rs?category=laboratory", None)
    assert scope.compartment is None
    assert scope.restricts("Observation")  # the criteria must reach the SQL


@pytest.mark.parametrize("granted", ["system/*.read", "user/*.*", "patient/*.rs",
                                     "system/*.cruds"])
def test_wildcards_never_reach_audit_events(ctx: ServiceContext, granted: str) -> None:
    scope = access_scope(ctx, granted, "p1")
    rule = only_rule(scope)
    assert rule.excluded == NOT_IN_WILDCARDS
    assert scope.permits("r", "Observation")
    assert not scope.permits("r", "AuditEvent")
    assert not scope.may_read_type("AuditEvent")
    assert scope.may_read_type("Observation")
    assert scope.restricts("AuditEvent")


@pytest.mark.parametrize("granted", ["user/AuditEvent.rs", "system/AuditEvent.read"])
def test_audit_events_need_a_scope_naming_them(ctx: ServiceContext, granted: str) -> None:
    scope = access_scope(ctx, granted, None)
    assert scope.permits("r", "AuditEvent") and scope.permits("s", "AuditEvent")
    assert not scope.permits("r", "Observation")


@pytest.mark.parametrize(("granted", "admin"), [
    ("system/*.*", True),
    ("system/*.cruds", True),
    ("openid system/*.* launch", True),
    ("system/*.read", False),
    ("system/*.write", False),
    ("system/*.crud", False),
    ("system/*.rs system/*.cud", False),  # together everything, but not the admin scope
    ("user/*.*", False),
    ("patient/*.*", False),
    ("system/Patient.cruds", False),
    ("system/*.*?_tag=x", False),
])
def test_admin_only_for_system_wildcard_all(ctx: ServiceContext, granted: str,
                                            admin: bool) -> None:
    assert access_scope(ctx, granted, "p1").admin is admin


# -- AccessScope: permits, restricts, view ---------------------------------------------------


def test_permits_by_letter_and_type() -> None:
    scope = AccessScope((AccessRule("Observation", permissions=frozenset("rs"),
                                    in_compartment=False),
                         AccessRule("Patient", permissions=frozenset("u"),
                                    in_compartment=False)))
    assert scope.permits("r", "Observation") and scope.permits("s", "Observation")
    assert not scope.permits("c", "Observation")
    assert scope.permits("u", "Patient") and not scope.permits("r", "Patient")
    assert not scope.permits("r", "Encounter")
    # no type: some rule grants it on some type (system search, narrowed in storage)
    assert scope.permits("s") and scope.permits("u")
    assert not scope.permits("d")


def test_default_scope_permits_everything() -> None:
    scope = AccessScope()
    for letter in "cruds":
        assert scope.permits(letter, "Observation")
    assert not scope.admin


def test_restricts() -> None:
    everything = AccessScope((AccessRule(None, permissions=READ_PERMISSIONS,
                                         in_compartment=False),))
    assert not everything.restricts("Patient")
    assert everything.restricts("Patient", frozenset("c"))  # no rule grants writes
    # an in-compartment rule without a compartment admits every row
    no_owner = AccessScope((AccessRule("Patient", in_compartment=True),))
    assert not no_owner.restricts("Patient")
    assert no_owner.restricts("Observation")


def test_restricts_with_a_compartment(ctx: ServiceContext) -> None:
    scope = access_scope(ctx, "patient/*.read", "p1")
    assert scope.restricts("Observation")
    assert scope.restricts("Organization")  # a compartment rule, even for non-members


def test_view_keeps_the_rules_granting_one_of_the_permissions() -> None:
    reads = AccessRule("Observation", permissions=frozenset("rs"), in_compartment=False)
    writes = AccessRule("Observation", permissions=frozenset("cu"), in_compartment=False)
    scope = AccessScope((reads, writes), None, admin=True)
    read_view = scope.view(READ_PERMISSIONS)
    assert read_view.rules == (reads,)
    assert read_view.admin
    assert scope.view(frozenset("c")).rules == (writes,)
    assert scope.view(frozenset("d")).rules == ()
    assert scope.view(READ_PERMISSIONS) is read_view  # made once
    assert scope.view(ALL_PERMISSIONS).rules == (reads, writes)


def test_view_keeps_the_compartment(ctx: ServiceContext) -> None:
    scope = access_scope(ctx, "patient/Observation.rs patient/Observation.c", "p1")
    view = scope.view(frozenset("c"))
    assert [r.permissions for r in view.rules] == [frozenset("c")]
    assert view.compartment == scope.compartment
