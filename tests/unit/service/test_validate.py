"""$validate's service: modes' refusals and the OperationOutcome it answers."""

from __future__ import annotations

from fhir_server.errors import Issue
from fhir_server.service.access import AccessRule, AccessScope
from fhir_server.service.validate import _delete_issues, _located, _permission, outcome


def test_every_issue_gets_an_expression() -> None:
    found = _located("Patient", [Issue("invalid", "whole"),
                                 Issue("value", "part", expression=("Patient.gender",))])
    assert [i.expression for i in found] == [("Patient",), ("Patient.gender",)]


def test_all_ok_when_nothing_is_found() -> None:
    assert outcome("Patient", []) == {"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "informational", "diagnostics": "All OK",
         "expression": ["Patient"]}]}
    warned = outcome("Patient", [Issue("informational", "n", "warning", ("Patient.x",))])
    assert warned["issue"] == [{"severity": "warning", "code": "informational",
                                "diagnostics": "n", "expression": ["Patient.x"]}]


def test_the_reasons_a_deletion_is_refused() -> None:
    assert _delete_issues("Patient", None) == []
    assert _delete_issues("AuditEvent", None) == [Issue(
        "business-rule", "AuditEvent resources are the audit trail: they cannot be "
        "deleted", expression=("AuditEvent",))]
    reader = AccessScope((AccessRule(permissions=frozenset("rs")),))
    assert _delete_issues("Patient", reader) == [Issue(
        "forbidden", "the token's scopes do not allow delete (d) on Patient",
        expression=("Patient",))]


def test_search_parameters_need_the_admin_scope() -> None:
    writer = AccessScope((AccessRule(),))
    assert _permission("SearchParameter", "c", "create", writer) == [Issue(
        "forbidden", "a create of a SearchParameter needs the admin scope (system/*.*)",
        expression=("SearchParameter",))]
    assert _permission("SearchParameter", "c", "create",
                       AccessScope((AccessRule(),), admin=True)) == []
    assert _permission("Patient", "c", "create", writer) == []
