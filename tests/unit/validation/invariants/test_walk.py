"""The invariant stage: one failing and one passing resource per kind of rule."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.validation import Validator
from fhir_server.validation.invariants import Invariants

DIV = '<div xmlns="http://www.w3.org/1999/xhtml">{}</div>'
EXT = [{"url": "http://example.org/x", "valueString": "x"}]
ORG = {"resourceType": "Organization", "id": "o1", "name": "Acme"}
CODING = {"system": "http://loinc.org", "code": "8867-4"}
NOT_IN_ERROR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                            "code": "entered-in-error"}]}
ACTIVE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                      "code": "active"}]}


def _text(html: str) -> dict[str, Any]:
    return {"status": "generated", "div": html}


def _obs(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [CODING]},
            **fields}


def _appointment(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Appointment", "participant": [
        {"actor": {"reference": "Patient/1"}, "status": "accepted"}], **fields}


#: (id, failing resource, (key or code, location), the same rule met)
CASES: list[tuple[str, dict[str, Any], tuple[str, str], dict[str, Any]]] = [
    ("per-1", {"resourceType": "Patient", "name": [{"family": "A", "period": {
        "start": "2021-01-02", "end": "2021-01-01"}}]},
     ("per-1", "Patient.name[0].period"),
     {"resourceType": "Patient", "name": [{"family": "A", "period": {
         "start": "2021-01-01", "end": "2021-01-02"}}]}),
    ("per-1-instants", {"resourceType": "Encounter", "status": "finished",
                        "class": {"code": "AMB"}, "period": {
                            "start": "2021-01-01T10:00:00+01:00",
                            "end": "2021-01-01T08:30:00Z"}},
     ("per-1", "Encounter.period"),
     {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
      "period": {"start": "2021-01-01T10:00:00+01:00", "end": "2021-01-01T09:30:00Z"}}),
    ("ext-1-no-value", {"resourceType": "Patient", "extension": [{"url": "http://x.org/a"}]},
     ("ext-1", "Patient.extension[0]"), {"resourceType": "Patient", "extension": EXT}),
    ("ext-1-both", {"resourceType": "Patient", "extension": [
        {"url": "http://x.org/a", "valueString": "v", "extension": EXT}]},
     ("ext-1", "Patient.extension[0]"),
     {"resourceType": "Patient", "extension": [{"url": "http://x.org/a", "extension": EXT}]}),
    ("ext-1-on-a-primitive", {"resourceType": "Patient", "_birthDate": {
        "extension": [{"url": "http://x.org/a"}]}},
     ("ext-1", "Patient._birthDate.extension[0]"),
     {"resourceType": "Patient", "_birthDate": {"extension": EXT}}),
    ("dom-2", {"resourceType": "Patient", "managingOrganization": {"reference": "#o1"},
               "contained": [{**ORG, "contained": [{"resourceType": "Patient"}]}]},
     ("dom-2", "Patient"),
     {"resourceType": "Patient", "managingOrganization": {"reference": "#o1"},
      "contained": [ORG]}),
    ("dom-3", {"resourceType": "Patient", "contained": [ORG]}, ("dom-3", "Patient"),
     {"resourceType": "Patient", "managingOrganization": {"reference": "#o1"},
      "contained": [ORG]}),
    ("dom-4", {"resourceType": "Patient", "managingOrganization": {"reference": "#o1"},
               "contained": [{**ORG, "meta": {"versionId": "1"}}]},
     ("dom-4", "Patient"),
     {"resourceType": "Patient", "managingOrganization": {"reference": "#o1"},
      "contained": [{**ORG, "meta": {"tag": [{"code": "x"}]}}]}),
    ("dom-5", {"resourceType": "Patient", "managingOrganization": {"reference": "#o1"},
               "contained": [{**ORG, "meta": {"security": [{"code": "R"}]}}]},
     ("dom-5", "Patient"),
     {"resourceType": "Patient", "managingOrganization": {"reference": "#o1"},
      "contained": [ORG]}),
    ("pat-1", {"resourceType": "Patient", "contact": [{"gender": "male"}]},
     ("pat-1", "Patient.contact[0]"),
     {"resourceType": "Patient", "contact": [{"name": {"family": "B"}}]}),
    ("obs-6", _obs(valueString="x", dataAbsentReason={"text": "lost"}),
     ("obs-6", "Observation"), _obs(dataAbsentReason={"text": "lost"})),
    ("obs-7", _obs(valueQuantity={"value": 1}, component=[
        {"code": {"coding": [CODING]}, "valueQuantity": {"value": 2}}]),
     ("obs-7", "Observation"),
     _obs(valueQuantity={"value": 1}, component=[
         {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
          "valueQuantity": {"value": 2}}])),
    ("con-5", {"resourceType": "Condition", "subject": {"reference": "Patient/1"},
               "verificationStatus": NOT_IN_ERROR, "clinicalStatus": ACTIVE},
     ("con-5", "Condition"),
     {"resourceType": "Condition", "subject": {"reference": "Patient/1"},
      "verificationStatus": NOT_IN_ERROR}),
    ("app-3", _appointment(status="booked"), ("app-3", "Appointment"),
     _appointment(status="booked", start="2021-01-01T10:00:00Z",
                  end="2021-01-01T10:30:00Z")),
    ("org-1", {"resourceType": "Organization", "active": True}, ("org-1", "Organization"),
     {"resourceType": "Organization", "name": "Acme"}),
    ("org-3", {"resourceType": "Organization", "name": "Acme",
               "telecom": [{"system": "phone", "value": "1", "use": "home"}]},
     ("org-3", "Organization.telecom[0]"),
     {"resourceType": "Organization", "name": "Acme",
      "telecom": [{"system": "phone", "value": "1", "use": "work"}]}),
    ("qty-3", _obs(valueQuantity={"value": 1, "code": "mg"}),
     ("qty-3", "Observation.valueQuantity"),
     _obs(valueQuantity={"value": 1, "code": "mg", "system": "http://unitsofmeasure.org"})),
    ("sqty-1", _obs(referenceRange=[{"low": {"value": 1, "comparator": "<"}}]),
     ("sqty-1", "Observation.referenceRange[0].low"),
     _obs(referenceRange=[{"low": {"value": 1}}])),
    ("cpt-2", {"resourceType": "Patient", "telecom": [{"value": "555"}]},
     ("cpt-2", "Patient.telecom[0]"),
     {"resourceType": "Patient", "telecom": [{"system": "phone", "value": "555"}]}),
    ("ref-1", {"resourceType": "Patient", "managingOrganization": {"reference": "#nope"}},
     ("ref-1", "Patient.managingOrganization"),
     {"resourceType": "Patient", "managingOrganization": {"reference": "#o1"},
      "contained": [ORG]}),
    ("txt-1-script", {"resourceType": "Patient", "text": _text(DIV.format(
        "<p>x</p><script>alert(1)</script>"))},
     ("txt-1", "Patient.text.div"),
     {"resourceType": "Patient", "text": _text(DIV.format("<p>x</p>"))}),
    ("txt-1-namespace", {"resourceType": "Patient", "text": _text("<div>hello</div>")},
     ("txt-1", "Patient.text.div"),
     {"resourceType": "Patient", "text": _text(DIV.format("hello"))}),
    ("txt-1-contained", {"resourceType": "Patient", "managingOrganization": {
        "reference": "#o1"}, "contained": [{**ORG, "text": _text(DIV.format(
            '<a href="javascript:alert(1)">x</a>'))}]},
     ("txt-1", "Patient.contained[0].text.div"),
     {"resourceType": "Patient", "managingOrganization": {"reference": "#o1"},
      "contained": [{**ORG, "text": _text(DIV.format('<a href="https://x.org/">x</a>'))}]}),
    ("txt-2", {"resourceType": "Patient", "text": _text(DIV.format("  "))},
     ("txt-2", "Patient.text.div"),
     {"resourceType": "Patient", "text": _text(DIV.format('<img src="#photo"/>'))}),
    ("que-7-fixed", {"resourceType": "Questionnaire", "status": "active", "item": [
        {"linkId": "a", "type": "boolean"},
        {"linkId": "b", "type": "string", "enableWhen": [
            {"question": "a", "operator": "exists", "answerString": "x"}]}]},
     ("que-7", "Questionnaire.item[1].enableWhen[0]"),
     {"resourceType": "Questionnaire", "status": "active", "item": [
         {"linkId": "a", "type": "boolean"},
         {"linkId": "b", "type": "string", "enableWhen": [
             {"question": "a", "operator": "exists", "answerBoolean": True}]}]}),
    ("given-aligned", {"resourceType": "Patient", "name": [
        {"given": ["A"], "_given": [None, {"extension": EXT}]}]},
     ("structure", "Patient.name[0]._given"),
     {"resourceType": "Patient", "name": [
         {"given": ["A", None], "_given": [None, {"extension": EXT}]}]}),
    ("given-null-alone", {"resourceType": "Patient", "name": [
        {"family": "A", "_given": [None, {"extension": EXT}]}]},
     ("structure", "Patient.name[0]._given[0]"),
     {"resourceType": "Patient", "name": [{"family": "A", "_given": [{"extension": EXT}]}]}),
    ("given-null-both", {"resourceType": "Patient", "name": [
        {"given": ["A", None], "_given": [{"extension": EXT}, None]}]},
     ("structure", "Patient.name[0].given[1]"),
     {"resourceType": "Patient", "name": [
         {"given": ["A", "B"], "_given": [{"extension": EXT}, None]}]}),
    ("target-type", {"resourceType": "Patient", "generalPractitioner": [
        {"reference": "Observation/1"}]},
     ("structure", "Patient.generalPractitioner[0]"),
     {"resourceType": "Patient", "generalPractitioner": [{"reference": "Practitioner/1"}]}),
    ("target-type-history", {"resourceType": "Patient", "managingOrganization": {
        "reference": "Patient/1/_history/2"}},
     ("structure", "Patient.managingOrganization"),
     {"resourceType": "Patient", "managingOrganization": {
         "reference": "https://other.org/fhir/Patient/1"}}),  # absolute: not checked
    ("target-type-contained", {"resourceType": "Patient", "contained": [
        {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}}],
        "generalPractitioner": [{"reference": "#o1"}]},
     ("structure", "Patient.generalPractitioner[0]"),
     {"resourceType": "Patient", "contained": [{"resourceType": "Practitioner", "id": "o1",
                                                "active": True}],
      "generalPractitioner": [{"reference": "#o1"}]}),
    ("bundle-entry", {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Organization", "active": True}}]},
     ("org-1", "Bundle.entry[0].resource"),
     {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": ORG}]}),
]


def _found(invariants: Invariants, resource: dict[str, Any]) -> set[tuple[str, str]]:
    return {(i.diagnostics.split(":")[0] if i.code == "invariant" else i.code,
             i.expression[0]) for i in invariants.issues(resource) if i.severity == "error"}


@pytest.mark.parametrize(("bad", "expected", "good"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_rule_fails_and_passes(invariants: Invariants, bad: dict[str, Any],
                                    expected: tuple[str, str], good: dict[str, Any]) -> None:
    assert expected in _found(invariants, bad)
    assert _found(invariants, good) == set()


@pytest.mark.parametrize(("bad", "expected", "good"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_the_validator_refuses_the_failing_one(validator: Validator, bad: dict[str, Any],
                                               expected: tuple[str, str],
                                               good: dict[str, Any]) -> None:
    assert any(i.severity == "error" for i in validator.issues(bad))
    assert [i for i in validator.issues(good) if i.severity == "error"] == []


def test_an_issue_names_the_key_the_text_and_the_location(invariants: Invariants) -> None:
    issues = invariants.issues({"resourceType": "Patient", "contact": [{"gender": "male"}]})
    assert [i.to_json() for i in issues] == [{
        "severity": "error", "code": "invariant",
        "diagnostics": "pat-1: SHALL at least contain a contact's details or a reference "
                       "to an organization",
        "expression": ["Patient.contact[0]"]}]


def test_a_warning_invariant_is_a_warning(validator: Validator) -> None:
    resource = {"resourceType": "Library", "status": "active", "name": "not an identifier",
                "type": {"text": "x"}}
    issues = validator.issues(resource)
    assert [(i.severity, i.code, i.diagnostics[:6]) for i in issues] == [
        ("warning", "invariant", "lib-0:")]
    validator.validate(resource)  # no refusal


def test_dates_of_different_precision_are_not_held_against_a_period(
        invariants: Invariants) -> None:
    # FHIRPath: 2021 <= 2021-01-01 is empty (unknown), which passes
    assert invariants.issues({"resourceType": "Patient", "name": [{"family": "A", "period": {
        "start": "2021", "end": "2021-01-01"}}]}) == []


def test_invariants_are_not_evaluated_on_a_malformed_resource(validator: Validator) -> None:
    issues = validator.issues({"resourceType": "Patient", "contact": [{"gender": 7}]})
    assert [i.code for i in issues] == ["structure"]


def test_off_means_no_invariant(validator: Validator) -> None:
    off = Validator.load(definitions=validator.definitions, invariants=False)
    assert off.issues({"resourceType": "Organization", "active": True}) == []
