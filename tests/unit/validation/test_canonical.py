"""Profiles by canonical URL: what load_profiles finds, and the cardinalities checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from fhir_server.errors import Issue, Unprocessable
from fhir_server.validation import Validator
from fhir_server.validation.canonical import load_profiles
from tests.data import TEST_PATIENT_PROFILE

URL = "http://example.org/fhir/StructureDefinition/test-patient"
TYPES = ("Patient", "Observation")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(TEST_PATIENT_PROFILE, tmp_path / "one.json")
    nested = tmp_path / "ig"
    nested.mkdir()
    other = {"resourceType": "StructureDefinition", "url": "http://example.org/obs",
             "name": "Obs", "kind": "resource", "type": "Observation",
             "derivation": "constraint", "differential": {"element": [
                 {"path": "Observation.note", "max": "1"}]}}
    base = {"resourceType": "StructureDefinition",
            "url": "http://hl7.org/fhir/StructureDefinition/Flag", "kind": "resource",
            "type": "Patient", "derivation": "specialization"}
    datatype = {"resourceType": "StructureDefinition", "url": "http://example.org/q",
                "kind": "complex-type", "type": "Quantity", "derivation": "constraint"}
    bundle = {"resourceType": "Bundle", "entry": [{"resource": r} for r in
                                                  (other, base, datatype)]}
    (nested / "bundle.json").write_bytes(orjson.dumps(bundle))
    (tmp_path / "broken.json").write_text("{not json")
    # a file of the specification's is never read for profiles
    (tmp_path / "profiles-resources.json").write_bytes(orjson.dumps(other | {
        "url": "http://example.org/never"}))
    return tmp_path


def test_constraints_on_resource_types_are_found_at_any_depth(folder: Path) -> None:
    found = load_profiles(folder, TYPES)
    assert sorted(found) == [URL, "http://example.org/obs"]
    assert (found[URL].type, found[URL].name) == ("Patient", "TestPatient")
    # the slice is left out
    assert [(r.path, r.min, r.max) for r in found[URL].rules] == [
        (("name",), 1, "*"), (("name", "family"), 1, "*"), (("gender",), 1, "*"),
        (("photo",), 0, "0"), (("deceased[x]",), 0, "0")]


def test_the_shipped_folder_holds_no_profile() -> None:
    from fhir_server.paths import data_dir
    assert load_profiles(data_dir("profiles"), TYPES) == {}


@pytest.mark.parametrize(("patient", "expected"), [
    ({"gender": "male", "name": [{"family": "A"}]}, []),
    ({"gender": "male"}, [("required", "Patient.name")]),
    ({"gender": "male", "name": [{"family": "A"}, {"text": "B"}]},
     [("required", "Patient.name[1].family")]),
    ({"gender": "male", "name": {"family": "A"}, "deceasedDateTime": "2020"},
     [("structure", "Patient.deceased")]),
    ({"name": [{"family": "A"}], "photo": [{}, {}]},
     [("required", "Patient.gender"), ("structure", "Patient.photo")]),
])
def test_cardinalities(folder: Path, patient: dict[str, object],
                       expected: list[tuple[str, str]]) -> None:
    profile = load_profiles(folder, TYPES)[URL]
    found = profile.issues({"resourceType": "Patient", **patient})
    assert [(i.code, i.expression[0]) for i in found] == expected
    assert all(URL in i.diagnostics and i.severity == "error" for i in found)


def test_the_validator_checks_a_named_profile(validator: Validator, folder: Path) -> None:
    profiled = Validator(validator._schema, validator._types, validator._labels,
                         validator.definitions, load_profiles(folder, TYPES))
    patient = {"resourceType": "Patient", "gender": "nope"}
    assert [i.expression for i in profiled.issues(patient)] == [("Patient.gender",)]
    assert [i.expression for i in profiled.issues(patient, (URL,))] == [
        ("Patient.gender",), ("Patient.name",)]
    # a version suffix names the same profile
    assert len(profiled.issues(patient, (f"{URL}|1.0",))) == 2
    assert profiled.issues(patient, ("http://nowhere/x",))[-1] == Issue(
        "not-supported", "the profile http://nowhere/x is not known to this server",
        expression=("Patient.meta.profile",))
    assert profiled.issues({"resourceType": "Observation"}, (URL,))[-1] == Issue(
        "structure", f"the profile {URL} is for Patient, not Observation",
        expression=("Observation",))


def test_validate_raises_on_errors_only(validator: Validator) -> None:
    class Warned(Validator):
        def issues(self, resource: object, profiles: object = ()) -> list[Issue]:
            return [Issue("informational", "a note", "warning", ("Patient",))]

    warned = Warned(validator._schema, validator._types, validator._labels,
                    validator.definitions)
    assert warned.validate({"resourceType": "Patient"}) == [
        Issue("informational", "a note", "warning", ("Patient",))]
    with pytest.raises(Unprocessable) as raised:
        validator.validate({"resourceType": "Patient", "gender": 1, "active": "x"})
    assert raised.value.diagnostics.endswith("(and 1 more)")
    assert len(raised.value.issues) == 2
