"""PATCH: JSON Patch (RFC 6902), media types and the identity guard.

FHIRPath Patch is tested in ``test_patch_fhirpath.py`` (spec cases, paths),
``test_patch_fhirpath_syntax.py`` (parsing paths) and ``test_patch_operations.py``
(operation semantics, values, malformed Parameters).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_server.errors import BadRequest, Unprocessable, UnsupportedMediaType
from fhir_server.service.patch import apply_patch

JSON_PATCH = "application/json-patch+json"


def _patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient", "id": "p1", "active": True,
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
        "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}],
        "birthDate": "1974-12-25",
    }


def _json_patch(*ops: dict[str, Any], resource: dict[str, Any] | None = None) -> Any:
    return apply_patch(resource or _patient(), JSON_PATCH, list(ops))


# --- every operation ------------------------------------------------------------------

@pytest.mark.parametrize(("op", "check"), [
    ({"op": "add", "path": "/gender", "value": "male"}, lambda r: r["gender"] == "male"),
    ({"op": "add", "path": "/name/0/given/1", "value": "J."},
     lambda r: r["name"][0]["given"] == ["Peter", "J.", "James"]),
    ({"op": "add", "path": "/telecom/-", "value": {"system": "fax"}},
     lambda r: r["telecom"][-1] == {"system": "fax"}),
    ({"op": "add", "path": "/active", "value": False}, lambda r: r["active"] is False),
    ({"op": "remove", "path": "/birthDate"}, lambda r: "birthDate" not in r),
    ({"op": "remove", "path": "/telecom/0"}, lambda r: r["telecom"][0]["system"] == "email"),
    ({"op": "replace", "path": "/name/0/family", "value": "Smith"},
     lambda r: r["name"][0]["family"] == "Smith"),
    ({"op": "move", "from": "/telecom/1", "path": "/telecom/0"},
     lambda r: [t["system"] for t in r["telecom"]] == ["email", "phone"]),
    ({"op": "move", "from": "/birthDate", "path": "/deceasedDateTime"},
     lambda r: r["deceasedDateTime"] == "1974-12-25" and "birthDate" not in r),
    ({"op": "copy", "from": "/name/0", "path": "/name/-"},
     lambda r: r["name"][0] == r["name"][1]),
    ({"op": "test", "path": "/name/0/given/0", "value": "Peter"},
     lambda r: r == _patient()),
    ({"op": "test", "path": "/telecom/1", "value": {"value": "a@b", "system": "email"}},
     lambda r: r == _patient()),
])
def test_json_patch_operations(op: dict[str, Any], check: Any) -> None:
    assert check(_json_patch(op))


def test_json_patch_applies_operations_in_order() -> None:
    result = _json_patch(
        {"op": "test", "path": "/birthDate", "value": "1974-12-25"},
        {"op": "replace", "path": "/birthDate", "value": "1975-01-01"},
        {"op": "test", "path": "/birthDate", "value": "1975-01-01"},
        {"op": "remove", "path": "/telecom"},
    )
    assert result["birthDate"] == "1975-01-01" and "telecom" not in result


def test_empty_json_patch_changes_nothing() -> None:
    assert _json_patch() == _patient()


def test_json_patch_keeps_the_media_type_parameters_apart() -> None:
    result = apply_patch(_patient(), "Application/JSON-Patch+JSON; charset=utf-8",
                         [{"op": "remove", "path": "/active"}])
    assert "active" not in result


# --- failures -------------------------------------------------------------------------

@pytest.mark.parametrize("op", [
    {"op": "test", "path": "/birthDate", "value": "2000-01-01"},
    {"op": "test", "path": "/active", "value": 1},  # JSON true is not the number 1
    {"op": "test", "path": "/gender", "value": "male"},  # absent
    {"op": "remove", "path": "/gender"},
    {"op": "remove", "path": "/telecom/5"},
    {"op": "replace", "path": "/gender", "value": "male"},
    {"op": "replace", "path": "/telecom/2", "value": {}},
    {"op": "add", "path": "/contact/0/name", "value": {}},  # parent missing
    {"op": "add", "path": "/telecom/7", "value": {}},
    {"op": "move", "from": "/gender", "path": "/x"},
    {"op": "copy", "from": "/gender", "path": "/x"},
    {"op": "move", "from": "/name", "path": "/name/0/x"},  # into its own child
    {"op": "add", "path": "/birthDate/x", "value": 1},  # into a string
])
def test_json_patch_that_cannot_be_applied_is_unprocessable(op: dict[str, Any]) -> None:
    with pytest.raises(Unprocessable) as info:
        _json_patch({"op": "test", "path": "/id", "value": "p1"}, op)
    assert "operation #2" in info.value.diagnostics
    assert info.value.issues[0].expression[0].startswith("Patient")


def test_json_patch_failure_points_at_the_element() -> None:
    with pytest.raises(Unprocessable) as info:
        _json_patch({"op": "test", "path": "/name/0/given/1", "value": "Jim"})
    assert info.value.issues[0].expression == ("Patient.name[0].given[1]",)
    assert info.value.status == 422 and info.value.code == "processing"
    with pytest.raises(Unprocessable) as info:
        _json_patch({"op": "remove", "path": "/id"})
    assert info.value.issues[0].expression == ("Patient.id",)


@pytest.mark.parametrize("body", [
    {"op": "remove", "path": "/active"},  # not an array
    "remove /active",
    None,
    ["remove"],
    [{"path": "/active"}],
    [{"op": "delete", "path": "/active"}],
    [{"op": ["remove"], "path": "/active"}],
    [{"op": "remove"}],
    [{"op": "remove", "path": "active"}],
    [{"op": "remove", "path": 3}],
    [{"op": "add", "path": "/gender"}],
    [{"op": "replace", "path": "/active"}],
    [{"op": "test", "path": "/active"}],
    [{"op": "move", "path": "/x"}],
    [{"op": "copy", "path": "/x", "from": "name"}],
    [{"op": "remove", "path": "/a~2b"}],  # bad escape
])
def test_malformed_json_patch_is_a_bad_request(body: Any) -> None:
    with pytest.raises(BadRequest):
        apply_patch(_patient(), JSON_PATCH, body)


@pytest.mark.parametrize("op", [
    {"op": "remove", "path": "/id"},
    {"op": "replace", "path": "/id", "value": "p2"},
    {"op": "replace", "path": "/resourceType", "value": "Person"},
    {"op": "remove", "path": "/resourceType"},
    {"op": "move", "from": "/id", "path": "/identifier"},
    {"op": "replace", "path": "", "value": {"resourceType": "Patient", "id": "p2"}},
    {"op": "replace", "path": "", "value": [1, 2]},
])
def test_json_patch_may_not_change_identity(op: dict[str, Any]) -> None:
    with pytest.raises(Unprocessable):
        _json_patch(op)


def test_json_patch_may_replace_the_whole_resource_keeping_its_identity() -> None:
    new = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    assert _json_patch({"op": "replace", "path": "", "value": new}) == new


def test_json_patch_never_changes_its_input() -> None:
    resource, value = _patient(), {"system": "fax", "value": "9"}
    body = [{"op": "add", "path": "/telecom/-", "value": value},
            {"op": "replace", "path": "/name/0/given/0", "value": "Pete"}]
    before, body_before = copy.deepcopy(resource), copy.deepcopy(body)
    result = apply_patch(resource, JSON_PATCH, body)
    result["telecom"][-1]["value"] = "changed"
    assert resource == before and body == body_before
    with pytest.raises(Unprocessable):  # fails after changing the copy: input untouched
        apply_patch(resource, JSON_PATCH, [*body, {"op": "remove", "path": "/x"}])
    assert resource == before


# --- media types ----------------------------------------------------------------------

@pytest.mark.parametrize("media_type", [
    "", "text/plain", "application/xml-patch+xml", "application/fhir+xml",
    "application/merge-patch+json", "application/x-www-form-urlencoded"])
def test_unknown_media_type_is_415(media_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        apply_patch(_patient(), media_type, [])
    assert info.value.status == 415


@pytest.mark.parametrize("media_type", ["application/json", "application/fhir+json",
                                        "application/fhir+json; fhirVersion=4.0"])
def test_json_array_sent_as_fhir_json_is_a_bad_request(media_type: str) -> None:
    with pytest.raises(BadRequest) as info:
        apply_patch(_patient(), media_type, [{"op": "remove", "path": "/active"}])
    assert JSON_PATCH in info.value.diagnostics


@pytest.mark.parametrize("body", [
    {"resourceType": "Patient"}, {"parameter": []}, "x", None,
    {"resourceType": "Parameters", "parameter": {"name": "operation"}}])
def test_fhirpath_patch_body_must_be_parameters(body: Any) -> None:
    with pytest.raises(BadRequest):
        apply_patch(_patient(), "application/fhir+json", body)
