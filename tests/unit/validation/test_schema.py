"""The validation schema built from the official schema and the definitions."""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson
import pytest

from fhir_server.paths import data_dir
from fhir_server.terminology import Terminology, expand_packed
from fhir_server.validation import Validator
from fhir_server.validation.messages import expression
from fhir_server.validation.schema import (
    BINDING_KEYWORD,
    MIME_TYPE,
    STRING_CHARACTERS,
    SchemaBuilder,
)
from fhir_server.validation.tolerances import apply_tolerances


@pytest.fixture(scope="module")
def builder(validator: Validator) -> SchemaBuilder:
    folder = data_dir("profiles")
    definitions = validator.definitions
    urls = sorted(set(definitions.required_bindings().values()))
    terminology = Terminology.unpack(expand_packed(folder, urls))
    official = orjson.loads((folder / "fhir.schema.json").read_bytes())
    return SchemaBuilder(official, definitions, terminology)


@pytest.fixture(scope="module")
def document(builder: SchemaBuilder) -> dict[str, Any]:
    return builder.build()


def test_dispatch_over_all_resource_types(document: dict[str, Any]) -> None:
    assert document["$ref"] == "#/definitions/ResourceList"
    resource_list = document["definitions"]["ResourceList"]
    assert len(resource_list["properties"]["resourceType"]["enum"]) == 146
    assert resource_list["required"] == ["resourceType"]


def test_objects_are_closed_and_non_empty(document: dict[str, Any]) -> None:
    patient = document["definitions"]["Patient"]
    assert patient["type"] == "object"
    assert patient["additionalProperties"] is False
    assert patient["minProperties"] == 1
    assert patient["properties"]["name"] == {
        "type": "array", "minItems": 1, "items": {"$ref": "#/definitions/HumanName"}}
    assert patient["properties"]["id"] == {"$ref": "#/definitions/id"}
    assert "not" in document["definitions"]["HumanName"]  # ele-1
    assert "not" not in patient


def test_mandatory_primitives(document: dict[str, Any], builder: SchemaBuilder) -> None:
    encounter = document["definitions"]["Encounter"]
    assert encounter["required"] == ["resourceType", "class"]
    assert {"anyOf": [{"required": ["status"]}, {"required": ["_status"]}]} in \
        encounter["allOf"]
    assert builder.mandatory_labels[("medicationCodeableConcept", "medicationReference")] == \
        "medication[x]"


def test_primitives(document: dict[str, Any]) -> None:
    defs = document["definitions"]
    assert defs["integer"] == {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
    assert defs["positiveInt"]["minimum"] == 1
    assert defs["string"] == {"type": "string", "minLength": 1, "pattern": STRING_CHARACTERS}
    assert defs["markdown"]["pattern"] == STRING_CHARACTERS
    assert "2[0-8]" in defs["date"]["pattern"]  # calendar-exact
    assert defs["Extension"]["properties"]["valueDate"] == {"$ref": "#/definitions/date"}


def test_required_coded_bindings(document: dict[str, Any], builder: SchemaBuilder) -> None:
    assert builder.bindings["Condition.clinicalStatus"] == \
        "http://hl7.org/fhir/ValueSet/condition-clinical"
    assert "EffectEvidenceSynthesis.effectEstimate.unitOfMeasure" not in builder.bindings
    condition = document["definitions"]["Condition"]["properties"]["clinicalStatus"]
    assert condition[BINDING_KEYWORD] == "http://hl7.org/fhir/ValueSet/condition-clinical"


def test_tolerances_are_narrow(document: dict[str, Any]) -> None:
    relaxed = copy.deepcopy(document)
    apply_tolerances(relaxed)
    before, after = document["definitions"], relaxed["definitions"]
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed == {"Questionnaire_Item", "ImplementationGuide", "Observation",
                       "Period_with_stop"}
    assert before["Period"] == after["Period"]


@pytest.mark.parametrize(("path", "text"), [
    ([], "Patient"),
    (["name", 0, "given", 1], "Patient.name[0].given[1]"),
    (["contained", 2, "status"], "Patient.contained[2].status"),
])
def test_expression(path: list[str | int], text: str) -> None:
    assert expression("Patient", path) == text


@pytest.mark.parametrize(("value", "valid"), [
    ("application/pdf", True), ("text/plain; charset=UTF-8", True),
    ("application/fhir+json", True), ("application/dicom; variant=DICOM WADO-RS", True),
    ("pdf", False), ("text/", False), ("/plain", False), ("a b/c", False)])
def test_mime_types_are_checked_by_form(document: dict[str, Any], value: str,
                                        valid: bool) -> None:
    """BCP 13 cannot be expanded: Attachment.contentType is a type/subtype by form."""
    content_type = document["definitions"]["Attachment"]["properties"]["contentType"]
    assert content_type == {"type": "string", "pattern": MIME_TYPE}
    assert bool(re.match(MIME_TYPE, value)) is valid


def test_short_format_names_stay_allowed(document: dict[str, Any]) -> None:
    """CapabilityStatement.format admits xml and json besides MIME types."""
    fmt = document["definitions"]["CapabilityStatement"]["properties"]["format"]
    assert "pattern" not in str(fmt)


@pytest.mark.parametrize(("value", "valid"), [
    ("Doe", True), ("tab\there\r\n", True), ("non\u00a0breaking", True),
    ("bell\u0007", False), ("nul\u0000", False), ("unit\u001f", False)])
def test_strings_hold_no_control_characters(value: str, valid: bool) -> None:
    assert bool(re.match(STRING_CHARACTERS, value)) is valid
