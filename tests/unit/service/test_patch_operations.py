"""FHIRPath Patch operations: semantics, values, types and malformed Parameters."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_server.definitions import Definitions
from fhir_server.errors import BadRequest, Unprocessable
from fhir_server.service.patch import apply_patch
from tests.unit.service.test_patch_fhirpath import BIRTH_TIME, ORG, op, pat, patch
from tests.unit.service.test_patch_fhirpath import _person as person


@pytest.fixture(scope="module")
def definitions() -> Definitions:
    return Definitions.load()


def obs(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"text": "bp"}, **elements}


# --- add ------------------------------------------------------------------------------

def test_add_appends_to_an_existing_list() -> None:
    result = patch(person(), op("add", "Patient", "telecom", {"valueContactPoint": {"value": "3"}}))
    assert result["telecom"][-1] == {"value": "3"} and len(result["telecom"]) == 4


def test_add_to_an_absent_repeating_element_needs_the_definitions(
        definitions: Definitions) -> None:
    body = op("add", "Patient", "address", {"valueAddress": {"city": "Paris"}})
    assert patch(pat(), body, definitions=definitions) == pat(address=[{"city": "Paris"}])
    assert patch(pat(), body) == pat(address={"city": "Paris"})  # assumed non-repeating
    ext = op("add", "Patient", "extension", {"valueExtension": {"url": ORG}})
    assert patch(pat(), ext) == pat(extension=[{"url": ORG}])  # always repeats


@pytest.mark.parametrize("name", ["birthDate", "deceasedBoolean", "active"])
def test_add_refuses_a_non_repeating_element_that_exists(name: str) -> None:
    with pytest.raises(Unprocessable, match="already has a value: use replace"):
        patch(person(), op("add", "Patient", name, {"valueBoolean": True}))


def test_add_refuses_another_type_of_a_present_choice(definitions: Definitions) -> None:
    for defs in (None, definitions):
        with pytest.raises(Unprocessable, match="already has a value"):
            patch(person(), op("add", "Patient", "deceased[x]",
                               {"valueDateTime": "2020"}), definitions=defs)


def test_add_choice_takes_the_type_suffix(definitions: Definitions) -> None:
    quantity = {"valueQuantity": {"value": 120, "unit": "mmHg"}}
    expected = obs(valueQuantity={"value": 120, "unit": "mmHg"})
    assert patch(obs(), op("add", "Observation", "value", quantity),
                 definitions=definitions) == expected
    assert patch(obs(), op("add", "Observation", "value[x]", quantity)) == expected
    with pytest.raises(Unprocessable, match="choice element"):
        patch(obs(), op("add", "Observation", "value", {"part": [
            {"name": "value", "valueDecimal": 1}]}), definitions=definitions)


def test_add_builds_complex_values_from_parts(definitions: Definitions) -> None:
    value = {"part": [{"name": "name", "valueHumanName": {"family": "du Marché"}},
                      {"name": "telecom", "valueContactPoint": {"value": "1"}},
                      {"name": "gender", "valueCode": "female",
                       "_valueCode": {"id": "g"}},
                      {"name": "period", "part": [{"name": "start", "valueDateTime": "2012"}]}]}
    result = patch(pat(), op("add", "Patient", "contact", value), definitions=definitions)
    assert result == pat(contact=[{"name": {"family": "du Marché"},
                                   "telecom": [{"value": "1"}], "gender": "female",
                                   "_gender": {"id": "g"}, "period": {"start": "2012"}}])
    two = {"part": [{"name": "given", "valueString": "A"}, {"name": "given", "valueString": "B"}]}
    assert patch(pat(), op("add", "Patient", "name", two))["name"] == {"given": ["A", "B"]}
    component = {"part": [{"name": "code", "valueCodeableConcept": {"text": "sys"}},
                          {"name": "value", "valueQuantity": {"value": 120}}]}
    assert patch(obs(), op("add", "Observation", "component", component),
                 definitions=definitions)["component"] == [
        {"code": {"text": "sys"}, "valueQuantity": {"value": 120}}]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("gender", {"valueHumanName": {"text": "x"}}, "has type code"),
    ("birthDate", {"valueCoding": {"code": "x"}}, "has type date"),
    ("name", {"valueString": "Peter"}, "has type HumanName"),
    ("maritalStatus", {"part": [{"name": "text", "valueString": "x"}]}, None),
    ("gender", {"part": [{"name": "text", "valueString": "x"}]}, "complex value"),
    ("contained", {"valueString": "x"}, "has type Resource"),
    ("nickname", {"valueString": "Jim"}, "not an element of Patient"),
    ("contact", {"part": [{"name": "nickname", "valueString": "x"}]}, "not an element"),
    ("contact", {"part": [{"name": "gender", "valueCode": "male"},
                          {"name": "gender", "valueCode": "female"}]}, "does not repeat"),
])
def test_add_checks_types_with_the_definitions(definitions: Definitions, name: str,
                                               value: dict[str, Any],
                                               message: str | None) -> None:
    body = op("add", "Patient", name, value)
    if message is None:  # a CodeableConcept built from parts is fine
        assert patch(pat(), body, definitions=definitions)[name] == {"text": "x"}
        return
    with pytest.raises(Unprocessable, match=message):
        patch(pat(), body, definitions=definitions)


def test_add_accepts_related_types(definitions: Definitions) -> None:
    low = op("add", "Observation.referenceRange[0]", "low", {"valueAge": {"value": 1}})
    assert patch(obs(referenceRange=[{"text": "t"}]), low, definitions=definitions)[
        "referenceRange"] == [{"text": "t", "low": {"value": 1}}]
    gender = op("add", "Patient", "gender", {"valueString": "other"})  # string for a code
    assert patch(pat(), gender, definitions=definitions)["gender"] == "other"


def test_add_a_contained_resource(definitions: Definitions) -> None:
    org = {"resourceType": "Organization", "id": "o", "name": "Acme"}
    result = patch(pat(), op("add", "Patient", "contained", {"resource": org}),
                   definitions=definitions)
    assert result == pat(contained=[org])
    renamed = patch(result, op("replace", "Patient.contained.ofType(Organization).name",
                               value={"valueString": "Acme 2"}), definitions=definitions)
    assert renamed["contained"][0]["name"] == "Acme 2"


def test_add_extension_to_a_primitive(definitions: Definitions) -> None:
    ext = {"valueExtension": {"url": ORG, "valueCode": "x"}}
    for defs in (None, definitions):
        result = patch(pat(gender="male"), op("add", "Patient.gender", "extension", ext),
                       definitions=defs)
        assert result == pat(gender="male", _gender={"extension": [{"url": ORG,
                                                                    "valueCode": "x"}]})
        given = patch(person(), op("add", "Patient.name[1].given[0]", "extension", ext),
                      definitions=defs)
        assert given["name"][1]["_given"] == [{"extension": [{"url": ORG, "valueCode": "x"}]}]
    with pytest.raises(Unprocessable, match="primitive value"):
        patch(pat(gender="male"), op("add", "Patient.gender", "text", {"valueString": "x"}))


def test_add_needs_exactly_one_target() -> None:
    with pytest.raises(Unprocessable, match="3 elements"):
        patch(person(), op("add", "Patient.telecom", "rank", {"valuePositiveInt": 1}))


# --- insert and move ------------------------------------------------------------------

def test_insert_keeps_primitive_extensions_parallel() -> None:
    result = patch(person(), op("insert", "Patient.name[0].given",
                                value={"valueString": "X", "_valueString": {"id": "x"}},
                                index=0))
    assert result["name"][0]["given"] == ["X", "Peter", "James"]
    assert result["name"][0]["_given"] == [{"id": "x"}, None, {"id": "g2"}]
    plain = patch(person(), op("insert", "Patient.name[1].given", value={"valueString": "J"},
                               index=1))
    assert plain["name"][1] == {"use": "usual", "given": ["Jim", "J"]}


def test_insert_into_an_absent_list(definitions: Definitions) -> None:
    body = op("insert", "Patient.address", value={"valueAddress": {"city": "X"}}, index=0)
    assert patch(pat(), body, definitions=definitions) == pat(address=[{"city": "X"}])
    with pytest.raises(Unprocessable, match="Index 1 is outside"):
        patch(pat(), op("insert", "Patient.address", value={"valueAddress": {}}, index=1))


@pytest.mark.parametrize(("path", "index", "error", "message"), [
    ("Patient.telecom", 4, Unprocessable, "outside Patient.telecom, which has 3"),
    ("Patient.birthDate", 0, Unprocessable, "not a repeating element"),
    ("Patient.gender", 0, Unprocessable, "not a repeating element"),  # with definitions
    ("Patient.name.given", 0, Unprocessable, "found 2 elements"),
    ("Patient.contact[3].telecom", 0, Unprocessable, "found no element"),
    ("Patient.telecom.first()", 0, BadRequest, "must end with the name"),
    ("Patient", 0, BadRequest, "must end with the name"),
])
def test_insert_failures(definitions: Definitions, path: str, index: int,
                         error: type[Exception], message: str) -> None:
    body = op("insert", path, value={"valueContactPoint": {"value": "x"}}, index=index)
    with pytest.raises(error, match=message):
        patch(person(), body, definitions=definitions)


def test_insert_keeps_lists_homogeneous() -> None:
    with pytest.raises(Unprocessable, match="does not match the items"):
        patch(person(), op("insert", "Patient.telecom", value={"valueString": "x"}, index=0))


def test_move_keeps_primitive_extensions_parallel() -> None:
    result = patch(person(), op("move", "Patient.name[0].given", source=1, destination=0))
    assert result["name"][0]["given"] == ["James", "Peter"]
    assert result["name"][0]["_given"] == [{"id": "g2"}, None]
    same = patch(person(), op("move", "Patient.telecom", source=1, destination=1))
    assert same == person()


@pytest.mark.parametrize(("path", "source", "destination", "message"), [
    ("Patient.telecom", 3, 0, "source index 3 is outside"),
    ("Patient.telecom", 0, 3, "destination index 3 is outside"),
    ("Patient.address", 0, 0, "source index 0 is outside Patient.address, which has 0"),
    ("Patient.active", 0, 0, "not a repeating element"),
])
def test_move_failures(path: str, source: int, destination: int, message: str) -> None:
    with pytest.raises(Unprocessable, match=message):
        patch(person(), op("move", path, source=source, destination=destination))


# --- delete and replace ---------------------------------------------------------------

@pytest.mark.parametrize(("path", "check"), [
    ("Patient.birthDate", lambda r: "birthDate" not in r and "_birthDate" not in r),
    ("Patient.birthDate.extension('" + BIRTH_TIME + "')",
     lambda r: r["birthDate"] == "1974-12-25" and "_birthDate" not in r),
    ("Patient.name[0].given[0]",
     lambda r: r["name"][0]["given"] == ["James"] and r["name"][0]["_given"] == [{"id": "g2"}]),
    ("Patient.name[0].given[1]",
     lambda r: r["name"][0]["given"] == ["Peter"] and "_given" not in r["name"][0]),
    ("Patient.name[0].given[1].id",
     lambda r: r["name"][0]["given"] == ["Peter", "James"] and "_given" not in r["name"][0]),
    ("Patient.contact[0].telecom[0]", lambda r: "contact" not in r),  # emptied: pruned
    ("Patient.extension('http://example.org/a')", lambda r: len(r["extension"]) == 1),
    ("Patient.telecom.where(system = 'email')", lambda r: len(r["telecom"]) == 2),
    ("Patient.deceased", lambda r: "deceasedBoolean" not in r),
])
def test_delete(path: str, check: Any) -> None:
    assert check(patch(person(), op("delete", path)))


def test_delete_of_several_elements_is_unprocessable() -> None:
    with pytest.raises(Unprocessable, match="only a single element"):
        patch(person(), op("delete", "Patient.telecom.where(system = 'phone')"))


def test_replace_a_choice_with_another_type(definitions: Definitions) -> None:
    for defs in (None, definitions):
        result = patch(obs(valueQuantity={"value": 1}, note=[{"text": "n"}]),
                       op("replace", "Observation.value", value={"valueString": "high"}),
                       definitions=defs)
        assert list(result) == ["resourceType", "id", "status", "code", "valueString", "note"]
        ext = patch(person(), op("replace", "Patient.extension('http://example.org/a').value",
                                 value={"valueInteger": 3}), definitions=defs)
        assert ext["extension"][0] == {"url": f"{ORG}/a", "valueInteger": 3}
    with pytest.raises(Unprocessable, match="has type"):
        patch(obs(valueQuantity={"value": 1}),
              op("replace", "Observation.value", value={"valueAddress": {}}),
              definitions=definitions)


def test_replace_primitive_replaces_its_extensions() -> None:
    result = patch(person(), op("replace", "Patient.birthDate", value={
        "valueDate": "1975-01-01", "_valueDate": {"id": "b"}}))
    assert result["birthDate"] == "1975-01-01" and result["_birthDate"] == {"id": "b"}
    given = patch(person(), op("replace", "Patient.name[0].given[1]",
                               value={"valueString": "Jay"}))
    assert given["name"][0]["given"] == ["Peter", "Jay"] and "_given" not in given["name"][0]


@pytest.mark.parametrize(("path", "value", "message"), [
    ("Patient.name[0]", {"valueString": "x"}, "complex value and cannot be replaced"),
    ("Patient.birthDate", {"valueCoding": {}}, "primitive value and cannot be replaced"),
    ("Patient", {"valueString": "x"}, "whole resource"),
    ("Patient.id", {"valueString": "p2"}, "may not change the resource's id"),
    ("Patient.resourceType", {"valueString": "Person"}, "resourceType"),
])
def test_replace_failures(path: str, value: dict[str, Any], message: str) -> None:
    with pytest.raises(Unprocessable, match=message):
        patch(person(), op("replace", path, value=value))


@pytest.mark.parametrize("path", ["Patient", "Patient.id"])
def test_delete_of_identity_is_unprocessable(path: str) -> None:
    with pytest.raises(Unprocessable):
        patch(person(), op("delete", path))


# --- malformed Parameters -------------------------------------------------------------

def _part(name: str, **value: Any) -> dict[str, Any]:
    return {"name": name, **value}


TYPE, PATH = _part("type", valueCode="replace"), _part("path", valueString="Patient.active")
VALUE = _part("value", valueBoolean=False)


@pytest.mark.parametrize(("parameter", "message"), [
    ({"name": "op", "part": [TYPE, PATH, VALUE]}, "must be named 'operation'"),
    ({"name": "operation", "part": [PATH, VALUE]}, "'type' and 'path' are required"),
    ({"name": "operation", "part": [TYPE, VALUE]}, "'type' and 'path' are required"),
    ({"name": "operation"}, "'type' and 'path' are required"),
    ({"name": "operation", "part": [_part("type", valueCode="patch"), PATH]}, "unknown type"),
    ({"name": "operation", "part": [TYPE, PATH]}, "needs the part(s) value"),
    ({"name": "operation", "part": [TYPE, PATH, VALUE, _part("colour")]}, "unknown part"),
    ({"name": "operation", "part": [TYPE, PATH, VALUE, VALUE]}, "repeated"),
    ({"name": "operation", "part": [TYPE, PATH, _part("value")]}, "exactly one of"),
    ({"name": "operation", "part": [TYPE, PATH, _part(
        "value", valueBoolean=True, valueString="x")]}, "exactly one of"),
    ({"name": "operation", "part": [TYPE, PATH, _part(
        "value", valueBoolean=True, part=[_part("a", valueString="x")])]}, "exactly one of"),
    ({"name": "operation", "part": [TYPE, PATH, _part("value", part=[])]}, "non-empty"),
    ({"name": "operation", "part": [TYPE, PATH, _part(
        "value", part=[{"valueString": "x"}])]}, "needs an element name"),
    ({"name": "operation", "part": [TYPE, PATH, _part(
        "value", part=[_part("a.b", valueString="x")])]}, "needs an element name"),
    ({"name": "operation", "part": [TYPE, PATH, {"name": ["type"]}]}, "unknown part"),
    ({"name": "operation", "part": {"name": "type"}}, "'part' must be an array"),
    ({"name": "operation", "part": [_part("type", valueCode=["add"]), PATH]}, "unknown type"),
    ({"name": "operation", "part": [TYPE, PATH, _part(
        "value", part=[_part("a")])]}, "exactly one of"),
    ({"name": "operation", "part": [TYPE, PATH, _part(
        "value", resource={"id": "x"})]}, "must be a resource"),
    ({"name": "operation", "part": [TYPE, _part("path", valueString=" "), VALUE]},
     "non-empty string"),
    ({"name": "operation", "part": [TYPE, _part("path", valueInteger=1), VALUE]}, "one of"),
    ({"name": "operation", "part": [_part("type", valueCode="add"), PATH, VALUE]},
     "needs the part(s) name"),
    ({"name": "operation", "part": [_part("type", valueCode="move"), PATH,
                                    _part("source", valueInteger=0)]}, "destination"),
    ({"name": "operation", "part": [_part("type", valueCode="insert"), PATH, VALUE]},
     "needs the part(s) index"),
    ({"name": "operation", "part": [_part("type", valueCode="insert"), PATH, VALUE,
                                    _part("index", valueInteger=-1)]}, "non-negative"),
    ({"name": "operation", "part": [_part("type", valueCode="insert"), PATH, VALUE,
                                    _part("index", valueString="1")]}, "one of valueInteger"),
    ({"name": "operation", "part": [_part("type", valueCode="insert"), PATH, VALUE,
                                    _part("index", valueInteger=True)]}, "non-negative"),
    ({"name": "operation", "part": [_part("type", valueCode="insert"), PATH, VALUE,
                                    _part("index", valueInteger=1.5)]}, "non-negative"),
    ("operation", "must be named 'operation'"),
])
def test_malformed_parameters_are_bad_requests(parameter: Any, message: str) -> None:
    body = {"resourceType": "Parameters", "parameter": [parameter]}
    with pytest.raises(BadRequest) as info:
        apply_patch(person(), "application/fhir+json", body)
    assert message in info.value.diagnostics and "operation #1" in info.value.diagnostics


def test_type_may_be_a_string_and_parts_checked_before_applying() -> None:
    good = {"name": "operation", "part": [_part("type", valueString="delete"), PATH]}
    assert "active" not in patch(person(), good)
    with pytest.raises(BadRequest, match="operation #2"):  # nothing applied before the 400
        patch(person(), good, {"name": "operation", "part": [PATH]})


# --- immutability ---------------------------------------------------------------------

def test_fhirpath_patch_never_changes_its_input(definitions: Definitions) -> None:
    resource, value = person(), {"valueContactPoint": {"system": "fax", "value": "9"}}
    ops = [op("add", "Patient", "telecom", value), op("delete", "Patient.name[0].given[1]"),
           op("move", "Patient.identifier", source=0, destination=1),
           op("replace", "Patient.birthDate", value={"valueDate": "2000-01-01"})]
    before, ops_before = copy.deepcopy(resource), copy.deepcopy(ops)
    result = patch(resource, *ops, definitions=definitions)
    result["telecom"][-1]["value"] = "changed"
    assert resource == before and ops == ops_before
    with pytest.raises(Unprocessable):  # the last operation fails after others applied
        patch(resource, *ops, op("delete", "Patient.telecom"), definitions=definitions)
    assert resource == before


@pytest.mark.parametrize("name", ["foo.bar", "_birthDate", "given[0]", "1st", "a b"])
def test_add_name_must_be_an_element_name(name: str) -> None:
    with pytest.raises(BadRequest, match="is not an element name"):
        patch(pat(), op("add", "Patient", name, {"valueString": "x"}))


def test_deeply_nested_patches_are_bad_requests() -> None:
    deep = "Patient.name.where(" + "(" * 2000 + "use = 'x'" + ")" * 2000 + ")"
    with pytest.raises(BadRequest, match="nested too deeply"):
        patch(person(), op("delete", deep))
    chain = "Patient.name.where(" + " and ".join(["use = 'x'"] * 3000) + ")"
    with pytest.raises(BadRequest, match="nested too deeply"):
        patch(person(), op("delete", chain))
    value: dict[str, Any] = {"valueString": "x"}
    for _ in range(3000):
        value = {"part": [{"name": "a", **value}]}
    with pytest.raises(BadRequest, match="nested too deeply"):
        patch(pat(), op("add", "Patient", "a", value))
