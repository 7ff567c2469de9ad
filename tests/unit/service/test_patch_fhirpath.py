"""FHIRPath Patch: the published R4 test cases, evaluating the path subset, failure modes.

The spec cases are ``r4/patch/fhir-path-tests.xml`` of the FHIR test-cases repository
(the table behind fhirpatch.html), rewritten as JSON.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_server.definitions import Definitions
from fhir_server.errors import BadRequest, Unprocessable
from fhir_server.service.patch import apply_patch
from fhir_server.service.patch_operations import Patcher

FHIR_JSON = "application/fhir+json"
ORG = "http://example.org"
BIRTH_TIME = "http://hl7.org/fhir/StructureDefinition/patient-birthTime"


@pytest.fixture(scope="module")
def definitions() -> Definitions:
    return Definitions.load()


def op(kind: str, path: str, name: str | None = None, value: dict[str, Any] | None = None,
       **indexes: int) -> dict[str, Any]:
    """One ``operation`` parameter; ``value`` is the body of the value part."""
    parts: list[dict[str, Any]] = [{"name": "type", "valueCode": kind},
                                   {"name": "path", "valueString": path}]
    if name is not None:
        parts.append({"name": "name", "valueString": name})
    if value is not None:
        parts.append({"name": "value", **value})
    parts += [{"name": k, "valueInteger": v} for k, v in indexes.items()]
    return {"name": "operation", "part": parts}


def patch(resource: dict[str, Any], *ops: dict[str, Any],
          definitions: Definitions | None = None) -> dict[str, Any]:
    body = {"resourceType": "Parameters", "parameter": list(ops)}
    return apply_patch(resource, FHIR_JSON, body, definitions=definitions)


def pat(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **elements}


def ids(*values: int) -> list[dict[str, Any]]:
    return [{"system": ORG, "value": f"value {v}"} for v in values]


CONTACT = {"name": {"text": "a name"}, "gender": "male"}
NEW_ID = {"valueIdentifier": {"system": ORG, "value": "value 3"}}
# name, input, operations, expected output, whether the definitions are needed
SPEC_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, Any], bool]] = [
    ("No Difference", pat(birthDate="1920-01-01"), [], pat(birthDate="1920-01-01"), False),
    ("Replace Primitive", pat(birthDate="1920-01-01"),
     [op("replace", "Patient.birthDate", value={"valueDate": "1930-01-01"})],
     pat(birthDate="1930-01-01"), False),
    ("Delete Primitive", pat(birthDate="1920-01-01"), [op("delete", "Patient.birthDate")],
     pat(), False),
    ("Add Primitive", pat(), [op("add", "Patient", "birthDate", {"valueDate": "1930-01-01"})],
     pat(birthDate="1930-01-01"), False),
    ("Replace Nested Primitive #1", pat(contact=[CONTACT]),
     [op("replace", "Patient.contact[0].gender", value={"valueCode": "female"})],
     pat(contact=[{**CONTACT, "gender": "female"}]), False),
    ("Replace Nested Primitive #2", pat(contact=[CONTACT]),
     [op("replace", "Patient.contact[0].name.text", value={"valueString": "the name"})],
     pat(contact=[{**CONTACT, "name": {"text": "the name"}}]), False),
    ("Delete Nested Primitive #1", pat(contact=[CONTACT]),
     [op("delete", "Patient.contact[0].gender")], pat(contact=[{"name": {"text": "a name"}}]),
     False),
    ("Delete Nested Primitive #2", pat(contact=[CONTACT]),
     [op("delete", "Patient.contact[0].name.text")], pat(contact=[{"gender": "male"}]), False),
    ("Add Nested Primitive", pat(contact=[{"name": {"text": "a name"}}]),
     [op("add", "Patient.contact[0]", "gender", {"valueCode": "male"})], pat(contact=[CONTACT]),
     False),
    ("Add Complex", pat(),
     [op("add", "Patient", "maritalStatus", {"valueCodeableConcept": {"text": "married"}})],
     pat(maritalStatus={"text": "married"}), False),
    ("Replace Complex", pat(maritalStatus={"id": "1", "text": "married"}),
     [op("replace", "Patient.maritalStatus",
         value={"valueCodeableConcept": {"id": "2", "text": "not married"}})],
     pat(maritalStatus={"id": "2", "text": "not married"}), False),
    ("Delete Complex", pat(maritalStatus={"text": "married"}),
     [op("delete", "Patient.maritalStatus")], pat(), False),
    ("Add Anonymous Type", pat(),
     [op("add", "Patient", "contact",
         {"part": [{"name": "name", "valueHumanName": {"text": "a name"}}]})],
     pat(contact=[{"name": {"text": "a name"}}]), True),
    ("Delete Anonymous Type", pat(contact=[{"name": {"text": "a name"}}]),
     [op("delete", "Patient.contact[0]")], pat(), False),
    ("List unchanged", pat(identifier=ids(1, 2)), [], pat(identifier=ids(1, 2)), False),
    ("List unchanged, contents changed",
     pat(identifier=[{"id": "a", **ids(1)[0]}, {"id": "b", **ids(2)[0]}]),
     [op("replace", "Patient.identifier[0].value", value={"valueString": "value 2"}),
      op("replace", "Patient.identifier[1].value", value={"valueString": "value 1"})],
     pat(identifier=[{"id": "a", **ids(2)[0]}, {"id": "b", **ids(1)[0]}]), False),
    ("Add to list", pat(identifier=ids(1, 2)),
     [op("insert", "Patient.identifier", value=NEW_ID, index=2)], pat(identifier=ids(1, 2, 3)),
     False),
    ("Insert in list #1", pat(identifier=ids(1, 2)),
     [op("insert", "Patient.identifier", value=NEW_ID, index=1)], pat(identifier=ids(1, 3, 2)),
     False),
    ("Insert in list #2", pat(identifier=ids(1, 2)),
     [op("insert", "Patient.identifier", value=NEW_ID, index=0)], pat(identifier=ids(3, 1, 2)),
     False),
    ("Delete from List #1", pat(identifier=ids(1, 2, 3)), [op("delete", "Patient.identifier[0]")],
     pat(identifier=ids(2, 3)), False),
    ("Delete from List #2", pat(identifier=ids(1, 2, 3)), [op("delete", "Patient.identifier[1]")],
     pat(identifier=ids(1, 3)), False),
    ("Delete from List #3", pat(identifier=ids(1, 2, 3)), [op("delete", "Patient.identifier[2]")],
     pat(identifier=ids(1, 2)), False),
    ("Reorder List #1", pat(identifier=ids(1, 2, 3, 4)),
     [op("move", "Patient.identifier", source=3, destination=1)],
     pat(identifier=ids(1, 4, 2, 3)), False),
    ("Reorder List #2", pat(identifier=ids(1, 2, 3, 4)),
     [op("move", "Patient.identifier", source=3, destination=0)],
     pat(identifier=ids(4, 1, 2, 3)), False),
    ("Reorder List #3", pat(identifier=ids(1, 2, 3, 4)),
     [op("move", "Patient.identifier", source=3, destination=2)],
     pat(identifier=ids(1, 2, 4, 3)), False),
    ("Reorder List #4", pat(identifier=ids(1, 2, 3, 4)),
     [op("move", "Patient.identifier", source=0, destination=3)],
     pat(identifier=ids(2, 3, 4, 1)), False),
    ("Reorder List #5", pat(identifier=ids(1, 2, 3, 4)),
     [op("move", "Patient.identifier", source=1, destination=0),
      op("move", "Patient.identifier", source=2, destination=1)],
     pat(identifier=ids(2, 3, 1, 4)), False),
    ("Reorder List #6", pat(identifier=ids(1, 2, 3, 4)),
     [op("move", "Patient.identifier", source=3, destination=d) for d in (0, 1, 2)],
     pat(identifier=ids(4, 3, 2, 1)), False),
    ("Operation on missing element #2", pat(), [op("add", "Patient", "identifier", NEW_ID)],
     pat(identifier=ids(3)), True),
]


@pytest.mark.parametrize(("name", "before", "ops", "after", "needs_definitions"), SPEC_CASES,
                         ids=[case[0] for case in SPEC_CASES])
def test_spec_cases(definitions: Definitions, name: str, before: dict[str, Any],
                    ops: list[dict[str, Any]], after: dict[str, Any],
                    needs_definitions: bool) -> None:
    original = copy.deepcopy(before)
    assert patch(before, *ops, definitions=definitions) == after
    if not needs_definitions:
        assert patch(before, *ops) == after
    assert before == original


def test_spec_case_operation_on_missing_element() -> None:
    path = "Patient.identifier.where(use = 'official').period"
    with pytest.raises(Unprocessable) as info:
        patch(pat(identifier=[{"use": "official", "value": "123"}]),
              op("add", path, "end", {"valueDate": "2021-12-01"}))
    assert "No content found at" in info.value.diagnostics
    assert info.value.issues[0].expression == (path,)


def test_spec_case_consecutive_operations_on_a_missing_contact() -> None:
    # The published case adds to Patient.contact[1], which does not exist (and its
    # expected output also changes an extension no operation touches); by the rule that a
    # path must select exactly one element, that operation is refused.
    before = pat(id="example", contact=[{"name": {"given": ["Bénédicte"]}}])
    with pytest.raises(Unprocessable, match=r"No content found at Patient\.contact\[1\]"):
        patch(before, op("add", "Patient.contact[0]", "gender", {"valueCode": "male"}),
              op("add", "Patient.contact[1]", "gender", {"valueCode": "male"}))


def test_spec_case_full_resource() -> None:
    div = '<div xmlns="http://www.w3.org/1999/xhtml"><b>Chalmers</b></div>'
    before = pat(
        id="example", text={"status": "generated", "div": div},
        name=[{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
              {"use": "usual", "given": ["Jim"]}],
        birthDate="1974-12-25",
        _birthDate={"extension": [{"url": BIRTH_TIME, "valueDateTime": "1974-12-25T14:35"}]},
        contact=[{"name": {"family": "du Marché", "_family": {"extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix",
             "valueString": "VV"}]}}}])
    new_div = div.replace("Chalmers", "Chalmers1")
    result = patch(before,
                   op("replace", "Patient.text.div", value={"valueString": new_div}),
                   op("replace", "Patient.name[0].family", value={"valueString": "Chalmers1"}))
    expected = copy.deepcopy(before)
    expected["text"]["div"], expected["name"][0]["family"] = new_div, "Chalmers1"
    assert result == expected


# --- the path subset ------------------------------------------------------------------

def _person() -> dict[str, Any]:
    return pat(
        id="p1", active=True, birthDate="1974-12-25",
        _birthDate={"extension": [{"url": BIRTH_TIME, "valueDateTime": "1974-12-25T14:35"}]},
        extension=[{"url": f"{ORG}/a", "valueString": "A"},
                   {"url": f"{ORG}/b", "valueCode": "B"}],
        identifier=[{"type": {"coding": [{"code": "MR"}]}, "value": "mrn"},
                    {"type": {"coding": [{"code": "SS"}]}, "value": "ssn"}],
        name=[{"use": "official", "family": "Chalmers", "given": ["Peter", "James"],
               "_given": [None, {"id": "g2"}]},
              {"use": "usual", "given": ["Jim"]}],
        telecom=[{"system": "phone", "use": "home", "value": "1"},
                 {"system": "phone", "use": "work", "value": "2"},
                 {"system": "email", "use": "home", "value": "a@b"}],
        deceasedBoolean=False,
        contact=[{"telecom": [{"system": "phone", "value": "9"}]}])


@pytest.mark.parametrize(("path", "expected"), [
    ("Patient.telecom.where(system='phone' and use='home').value", "1"),
    ("Patient.telecom.where(system = 'phone' and use = 'work').value", "2"),
    ("telecom.where(system='email' or use='work').first().value", "2"),
    ("Patient.telecom.where(system != 'phone').value", "a@b"),
    ("Patient.telecom.where((system='phone' or system='fax') and use='work').value", "2"),
    ("Patient.telecom.where(system ~ 'EMAIL').value", "a@b"),
    ("Patient.telecom.where(use='home').last().value", "a@b"),
    ("Patient.telecom.first().value", "1"),
    ("Patient.telecom[1].value", "2"),
    ("Patient.identifier.where(type.coding.code = 'SS').value", "ssn"),
    ("Patient.identifier.where(type.coding.where(code = 'MR').exists()).value", "mrn"),
    ("Patient.name.where(use = 'usual').given", "Jim"),
    ("Patient.name.given.where($this = 'James')", "James"),
    ("Patient.name.given[2]", "Jim"),  # indexes the flattened collection
    ("Patient.name.where(family.empty()).given", "Jim"),
    ("Patient.name.where(family.exists().not()).given", "Jim"),
    ("Patient.contact.telecom.where(value = '9').system", "phone"),
    ("Patient.extension('http://example.org/a').value", "A"),
    ("Patient.extension.where(url = 'http://example.org/b').value", "B"),
    ("Patient.extension.where(value = 'B').url", f"{ORG}/b"),
    ("Patient.deceased", False),
    ("Patient.deceased.ofType(boolean)", False),
    ("Patient.birthDate.extension('" + BIRTH_TIME + "').value", "1974-12-25T14:35"),
])
def test_paths_find_one_element(definitions: Definitions, path: str, expected: Any) -> None:
    for defs in (None, definitions):
        assert [node.value for node in Patcher(_person(), defs).resolve(path)] == [expected]


@pytest.mark.parametrize(("path", "expected"), [
    ("Patient.name.given", ["Peter", "James", "Jim"]),
    ("name.given", ["Peter", "James", "Jim"]),
    ("Patient.telecom.where(system='phone').use", ["home", "work"]),
    ("Patient.telecom.where(use='nothing')", []),
    ("Patient.telecom.where(nothing = 'x')", []),
    ("Patient.identifier.type.coding.code", ["MR", "SS"]),
    ("Patient.extension.value", ["A", "B"]),
    ("Patient.extension.value.ofType(code)", ["B"]),
    ("Patient.gender", []),
    ("Patient.name[0].given[1].id", ["g2"]),
    ("Patient.active.where($this = true)", [True]),
    ("Patient.active.where($this = 1)", []),  # true is not 1
])
def test_paths_find_collections(path: str, expected: list[Any]) -> None:
    assert [node.value for node in Patcher(_person(), None).resolve(path)] == expected


@pytest.mark.parametrize("path", [
    "Patient.telecom.where(system='phone')",  # two matches
    "Patient.name.given",
    "Patient.telecom.value",
    "Patient.extension",
])
def test_replace_needs_exactly_one_match(path: str) -> None:
    with pytest.raises(Unprocessable) as info:
        patch(_person(), op("replace", path, value={"valueString": "x"}))
    assert "elements" in info.value.diagnostics
    assert info.value.issues[0].expression == (path,)


@pytest.mark.parametrize("path", [
    "Patient.telecom.where(system='fax')", "Patient.gender", "Patient.name[5]",
    "Patient.deceased.ofType(dateTime)", "Patient.extension('http://nowhere')",
    "Patient.identifier.where(type.coding.code = 'XX')",
])
def test_replace_of_nothing_is_unprocessable_but_delete_is_a_no_op(path: str) -> None:
    with pytest.raises(Unprocessable, match="No content found"):
        patch(_person(), op("replace", path, value={"valueString": "x"}))
    assert patch(_person(), op("delete", path)) == _person()


@pytest.mark.parametrize("path", [
    "Patient.name[", "Patient.name.resolve()",  # syntax: see test_patch_fhirpath_syntax.py
    "Patient.extension(url)", "Patient.name.ofType('x')",  # arguments the evaluator refuses
])
def test_bad_paths_are_bad_requests(path: str) -> None:
    with pytest.raises(BadRequest):
        patch(_person(), op("delete", path))


def test_path_for_another_resource_type_is_unprocessable() -> None:
    with pytest.raises(Unprocessable, match="does not apply to a Patient"):
        patch(_person(), op("delete", "Observation.status"))
