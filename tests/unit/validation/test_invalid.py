"""Hostile resources: each is rejected with exactly the expected issues."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.errors import Unprocessable
from fhir_server.validation import Validator

EXT = [{"url": "http://example.org/x", "valueString": "a"}]

# (id, resource, expected {(issue code, expression...)})
CASES: list[tuple[str, Any, set[tuple[str, ...]]]] = [
    ("wrong-json-type", {"resourceType": "Patient", "active": "yes"},
     {("structure", "Patient.active")}),
    ("string-for-array", {"resourceType": "Patient", "name": "John"},
     {("structure", "Patient.name")}),
    ("object-for-array", {"resourceType": "Patient", "name": {"family": "x"}},
     {("structure", "Patient.name")}),
    ("array-for-code", {"resourceType": "Patient", "gender": ["male"]},
     {("structure", "Patient.gender")}),
    ("string-for-object", {"resourceType": "Encounter", "status": "planned", "class": "AMB"},
     {("structure", "Encounter.class")}),
    ("number-in-string-array", {"resourceType": "Patient", "name": [{"given": ["a", 3]}]},
     {("structure", "Patient.name[0].given[1]")}),
    ("unknown-elements",
     {"resourceType": "Patient", "foo": 1, "name": [{"family": "x", "bar": 2}]},
     {("structure", "Patient.foo"), ("structure", "Patient.name[0].bar")}),
    ("not-calendar-date", {"resourceType": "Patient", "birthDate": "2021-02-30"},
     {("value", "Patient.birthDate")}),
    ("not-leap-year", {"resourceType": "Patient", "birthDate": "1900-02-29"},
     {("value", "Patient.birthDate")}),
    ("bad-date-shape", {"resourceType": "Patient", "birthDate": "21-02-03"},
     {("value", "Patient.birthDate")}),
    ("not-calendar-instant",
     {"resourceType": "Patient", "meta": {"lastUpdated": "2021-04-31T00:00:00Z"}},
     {("value", "Patient.meta.lastUpdated")}),
    ("not-calendar-datetime",
     {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
      "effectiveDateTime": "2019-06-31T10:00:00+01:00"},
     {("value", "Observation.effectiveDateTime")}),
    ("datetime-without-zone",
     {"resourceType": "Patient", "deceasedDateTime": "2020-01-01T10:00:00"},
     {("value", "Patient.deceasedDateTime")}),
    ("bad-id", {"resourceType": "Patient", "id": "a b"}, {("value", "Patient.id")}),
    ("bad-uri", {"resourceType": "Patient", "implicitRules": "a b"},
     {("value", "Patient.implicitRules")}),
    ("bad-narrative", {"resourceType": "Patient", "text": {"status": "generated", "div": "hi"}},
     {("value", "Patient.text.div")}),
    ("missing-encounter-status", {"resourceType": "Encounter", "class": {"code": "AMB"}},
     {("required", "Encounter.status")}),
    ("missing-encounter-everything", {"resourceType": "Encounter"},
     {("required", "Encounter.status"), ("required", "Encounter.class")}),
    ("missing-primitive-in-backbone",
     {"resourceType": "Patient", "link": [{"other": {"reference": "Patient/1"}}]},
     {("required", "Patient.link[0].type")}),
    ("missing-narrative-status",
     {"resourceType": "Patient",
      "text": {"div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}},
     {("required", "Patient.text.status")}),
    ("missing-extension-url", {"resourceType": "Patient", "extension": [{"valueString": "a"}]},
     {("required", "Patient.extension[0].url")}),
    ("missing-choice",
     {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
      "subject": {"reference": "Patient/1"}},
     {("required", "MedicationRequest.medication")}),
    ("missing-docref-content", {"resourceType": "DocumentReference", "status": "current"},
     {("required", "DocumentReference.content")}),
    ("missing-appointment-participant", {"resourceType": "Appointment", "status": "booked"},
     {("required", "Appointment.participant")}),
    ("bad-gender", {"resourceType": "Patient", "gender": "mal"},
     {("code-invalid", "Patient.gender")}),
    ("bad-encounter-status", {"resourceType": "Encounter", "status": "done",
                              "class": {"code": "AMB"}},
     {("code-invalid", "Encounter.status")}),
    ("bad-appointment-participant-status",
     {"resourceType": "Appointment", "status": "booked", "participant": [{"status": "bogus"}]},
     {("code-invalid", "Appointment.participant[0].status")}),
    ("bad-docref-status",
     {"resourceType": "DocumentReference", "status": "current", "docStatus": "nope",
      "content": [{"attachment": {"contentType": "text/plain"}}]},
     {("code-invalid", "DocumentReference.docStatus")}),
    ("bad-coding-in-required-binding",
     {"resourceType": "Condition", "subject": {"reference": "Patient/1"},
      "clinicalStatus": {"coding": [{"system":
                                     "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                     "code": "bogus"}]}},
     {("code-invalid", "Condition.clinicalStatus")}),
    ("text-only-in-required-binding",
     {"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
      "verificationStatus": {"text": "confirmed"}},
     {("code-invalid", "AllergyIntolerance.verificationStatus")}),
    ("empty-array", {"resourceType": "Patient", "name": []}, {("structure", "Patient.name")}),
    ("empty-object", {"resourceType": "Patient", "name": [{}]},
     {("structure", "Patient.name[0]")}),
    ("empty-string", {"resourceType": "Patient", "name": [{"family": ""}]},
     {("value", "Patient.name[0].family")}),
    ("empty-code", {"resourceType": "Patient", "language": ""},
     {("value", "Patient.language")}),
    ("only-id", {"resourceType": "Patient", "name": [{"id": "a"}]},
     {("structure", "Patient.name[0]")}),
    ("empty-extension-sibling", {"resourceType": "Patient", "_birthDate": {}},
     {("structure", "Patient._birthDate")}),
    ("null-without-extension", {"resourceType": "Patient", "name": [{"given": ["a", None]}]},
     {("structure", "Patient.name[0].given[1]")}),
    ("null-scalar", {"resourceType": "Patient", "gender": None},
     {("structure", "Patient.gender")}),
    ("two-choice-variants",
     {"resourceType": "Patient", "deceasedBoolean": True, "deceasedDateTime": "2020"},
     {("structure", "Patient.deceasedBoolean", "Patient.deceasedDateTime")}),
    ("two-extension-values",
     {"resourceType": "Patient",
      "extension": [{"url": "http://x.org", "valueString": "a", "valueBoolean": True}]},
     {("structure", "Patient.extension[0].valueBoolean", "Patient.extension[0].valueString")}),
    ("decimal-for-integer", {"resourceType": "Patient", "multipleBirthInteger": 1.5},
     {("value", "Patient.multipleBirthInteger")}),
    ("integer-overflow", {"resourceType": "Patient", "multipleBirthInteger": 2**40},
     {("value", "Patient.multipleBirthInteger")}),
    ("boolean-for-integer", {"resourceType": "Patient", "multipleBirthInteger": True},
     {("structure", "Patient.multipleBirthInteger")}),
    ("zero-positive-int",
     {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
      "valueSampledData": {"origin": {"value": 1}, "period": 1, "dimensions": 0}},
     {("value", "Observation.valueSampledData.dimensions")}),
    ("contained-problems",
     {"resourceType": "Patient",
      "contained": [{"resourceType": "Practitioner", "name": [{"family": 1}]},
                    {"resourceType": "Nope"}, {"id": "x"}]},
     {("structure", "Patient.contained[0].name[0].family"),
      ("structure", "Patient.contained[1].resourceType"),
      ("required", "Patient.contained[2].resourceType")}),
    ("contained-in-contained",
     {"resourceType": "Patient",
      "contained": [{"resourceType": "Patient", "contained": [{"resourceType": "Patient"}]}]},
     {("structure", "Patient.contained[0].contained")}),
    ("contained-missing-mandatory",
     {"resourceType": "Patient", "contained": [{"resourceType": "Encounter", "status": "x"}]},
     {("code-invalid", "Patient.contained[0].status"),
      ("required", "Patient.contained[0].class")}),
    ("bundle-entry",
     {"resourceType": "Bundle", "type": "collection",
      "entry": [{"resource": {"resourceType": "Patient", "active": "x"}}]},
     {("structure", "Bundle.entry[0].resource.active")}),
    ("many-at-once",
     {"resourceType": "Patient", "active": 1, "gender": "x", "birthDate": "2021-02-29",
      "name": [{"given": ["A", ""]}], "extension": [*EXT, {"url": "u"}, {}]},
     {("structure", "Patient.active"), ("code-invalid", "Patient.gender"),
      ("value", "Patient.birthDate"), ("value", "Patient.name[0].given[1]"),
      ("structure", "Patient.extension[2]"), ("required", "Patient.extension[2].url")}),
]


def _found(validator: Validator, resource: Any) -> set[tuple[str, ...]]:
    return {(i.code, *i.expression) for i in validator.issues(resource)}


@pytest.mark.parametrize(("resource", "expected"),
                         [pytest.param(r, e, id=i) for i, r, e in CASES])
def test_rejected_with_expected_issues(validator: Validator, resource: Any,
                                       expected: set[tuple[str, ...]]) -> None:
    assert _found(validator, resource) == expected
    with pytest.raises(Unprocessable) as caught:
        validator.validate(resource)
    assert caught.value.status == 422
    issues = caught.value.issues
    assert {(i.code, *i.expression) for i in issues} == expected
    assert len(issues) == len(expected), "one issue per problem, no duplicates"
    assert all(i.diagnostics and i.severity == "error" for i in issues)


@pytest.mark.parametrize(("resource", "expected"), [
    pytest.param([1, 2], ("structure",), id="not-an-object"),
    pytest.param({"id": "x"}, ("required", "resourceType"), id="no-resource-type"),
    pytest.param({"resourceType": "Foo"}, ("structure", "resourceType"), id="unknown-type"),
    pytest.param({"resourceType": ["Patient"]}, ("structure", "resourceType"),
                 id="resource-type-not-a-string"),
    pytest.param({"resourceType": "DomainResource"}, ("structure", "resourceType"),
                 id="abstract-type"),
])
def test_not_a_known_resource(validator: Validator, resource: Any,
                              expected: tuple[str, ...]) -> None:
    with pytest.raises(Unprocessable) as caught:
        validator.validate(resource)
    assert [(i.code, *i.expression) for i in caught.value.issues] == [expected]


@pytest.mark.parametrize("resource", [
    pytest.param({"resourceType": "Patient"}, id="minimal"),
    pytest.param({"resourceType": "Patient", "birthDate": "2020-02-29"}, id="leap-day"),
    pytest.param({"resourceType": "Patient", "birthDate": "2000-02-29"}, id="leap-century"),
    pytest.param({"resourceType": "Patient", "birthDate": "1974"}, id="partial-date"),
    pytest.param({"resourceType": "Patient", "name": [{"family": "a\u00a0b"}]}, id="nbsp"),
    pytest.param({"resourceType": "Patient", "name": [{"given": ["A", None],
                                                       "_given": [None, {"extension": EXT}]}]},
                 id="null-with-extension"),
    pytest.param({"resourceType": "Encounter", "_status": {"extension": EXT},
                  "class": {"code": "AMB"}}, id="mandatory-primitive-as-extension"),
    pytest.param({"resourceType": "Patient", "deceasedBoolean": False,
                  "_deceasedBoolean": {"extension": EXT}}, id="choice-with-its-extension"),
    pytest.param({"resourceType": "Condition", "subject": {"reference": "Patient/1"},
                  "clinicalStatus": {"coding": [
                      {"system": "http://example.org", "code": "x"},
                      {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                       "code": "active"}]}}, id="one-coding-in-value-set"),
    pytest.param({"resourceType": "CapabilityStatement", "status": "active", "date": "2020",
                  "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
                  "implementation": {"description": "this server"}, "rest": [{"mode": "server"}]},
                 id="fhir-version-4.0.1"),
])
def test_accepted(validator: Validator, resource: dict[str, Any]) -> None:
    # dom-6 (no narrative) is a warning: it never refuses a write
    assert [i for i in validator.issues(resource) if i.severity != "warning"] == []
    validator.validate(resource)


def test_diagnostics_are_readable(validator: Validator) -> None:
    with pytest.raises(Unprocessable) as caught:
        validator.validate({"resourceType": "Patient", "birthDate": "2021-02-30",
                            "gender": "mal", "foo": 1})
    text = {i.expression[0]: i.diagnostics for i in caught.value.issues}
    assert "not a valid calendar date" in text["Patient.birthDate"]
    assert "female, male, other, unknown" in text["Patient.gender"]
    assert "unknown element 'foo'" in text["Patient.foo"]
    assert "3 more" not in caught.value.diagnostics and "2 more" in caught.value.diagnostics
