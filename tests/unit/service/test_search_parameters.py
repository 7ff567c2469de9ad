"""What is checked of a SearchParameter before it is accepted: every FHIRPath
expression it holds, each refusal naming its element."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.errors import Unprocessable
from fhir_server.service.search_parameters import check_costs, refusal
from fhir_server.settings import load_settings

SETTINGS = load_settings({"FHIRPATH_MAX_BYTES": "200", "FHIRPATH_MAX_NODES": "20"},
                         env_file=None)


def parameter(expression: str | None = "Patient.name", **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "SearchParameter", "code": "x", "type": "string",
                           "base": ["Patient"], "status": "active", **more}
    if expression is not None:
        out["expression"] = expression
    return out


def refused(resource: dict[str, Any]) -> Unprocessable:
    with pytest.raises(Unprocessable) as caught:
        check_costs(SETTINGS, resource)
    return caught.value


def test_within_the_limits_passes() -> None:
    check_costs(SETTINGS, parameter())
    check_costs(SETTINGS, parameter(None))  # no expression: nothing to evaluate
    assert refusal(SETTINGS, parameter()) is None


def test_too_long_is_422_too_costly_at_the_expression() -> None:
    error = refused(parameter(" | ".join(["Patient.name"] * 20)))
    assert error.status == 422
    assert error.operation_outcome()["issue"] == [{
        "severity": "error", "code": "too-costly",
        "diagnostics": "SearchParameter.expression is 297 bytes long; at most 200 are "
                       "allowed (FHIRPATH_MAX_BYTES)",
        "expression": ["SearchParameter.expression"]}]


def test_too_many_nodes_is_422_too_costly() -> None:
    error = refused(parameter(" | ".join(["Patient.name"] * 6)))
    issue = error.operation_outcome()["issue"][0]
    assert (error.status, issue["code"]) == (422, "too-costly")
    assert issue["diagnostics"] == ("SearchParameter.expression has 23 nodes once parsed; "
                                    "at most 20 are allowed (FHIRPATH_MAX_NODES)")


def test_no_fhirpath_is_422_invalid() -> None:
    error = refused(parameter("Patient.name )"))
    issue = error.operation_outcome()["issue"][0]
    assert (error.status, issue["code"], issue["expression"]) == (
        422, "invalid", ["SearchParameter.expression"])


def test_components_are_checked_too_each_named() -> None:
    resource = parameter("Observation", type="composite", component=[
        {"definition": "http://x/a", "expression": "code"},
        {"definition": "http://x/b", "expression": "value.descendants()"},
        {"definition": "http://x/c", "expression": "value )"}])
    issues = refused(resource).operation_outcome()["issue"]
    assert [(i["code"], i["expression"]) for i in issues] == [
        ("too-costly", ["SearchParameter.component[1].expression"]),
        ("invalid", ["SearchParameter.component[2].expression"])]
    assert refusal(SETTINGS, resource) == issues[0]["diagnostics"]
