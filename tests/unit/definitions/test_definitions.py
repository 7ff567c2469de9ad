"""Facts extracted from the R4 StructureDefinitions."""

from __future__ import annotations

from fhir_server.definitions import Definitions


def test_concrete_resource_types(definitions: Definitions) -> None:
    types = definitions.resource_types
    assert len(types) == 146
    assert {"Patient", "Encounter", "Bundle", "Parameters", "Binary"} <= types
    assert not types & {"Resource", "DomainResource", "MetadataResource", "Element"}
    assert definitions.is_resource_type("Observation")
    assert not definitions.is_resource_type("DomainResource")
    assert {"Resource", "DomainResource"} <= definitions.abstract_types


def test_data_types(definitions: Definitions) -> None:
    assert {"HumanName", "CodeableConcept", "Extension", "Meta"} <= definitions.complex_types
    assert "SimpleQuantity" not in definitions.complex_types  # a profile, not a type
    assert {"string", "date", "dateTime", "code", "xhtml"} <= definitions.primitive_types


def test_element_facts(definitions: Definitions) -> None:
    gender = definitions.element("Patient.gender")
    assert gender is not None
    assert (gender.min, gender.max, gender.types) == (0, 1, ("code",))
    assert gender.is_summary and not gender.is_array and not gender.is_mandatory
    assert gender.binding == "http://hl7.org/fhir/ValueSet/administrative-gender"
    name = definitions.element("Patient.name")
    assert name is not None and name.max is None and name.is_array
    status = definitions.element("Encounter.status")
    assert status is not None and status.is_mandatory and status.binding is not None
    url = definitions.element("Extension.url")
    assert url is not None and url.min == 1 and url.types == ("uri",)
    assert definitions.element("Patient.nope") is None


def test_extensible_bindings_are_not_required(definitions: Definitions) -> None:
    marital = definitions.element("Patient.maritalStatus")
    assert marital is not None and marital.binding is None


def test_choice_elements(definitions: Definitions) -> None:
    deceased = definitions.element("Patient.deceased[x]")
    assert deceased is not None and deceased.is_choice
    assert deceased.name == "deceased[x]"
    assert deceased.json_names() == ("deceasedBoolean", "deceasedDateTime")
    props = definitions.properties("Patient")
    assert props["deceasedDateTime"] is deceased
    assert props["_birthDate"] is definitions.element("Patient.birthDate")


def test_backbone_and_content_reference(definitions: Definitions) -> None:
    contact = definitions.element("Patient.contact")
    assert contact is not None and contact.is_backbone and contact.has_children
    assert "relationship" in definitions.children("Patient.contact")
    part = definitions.element("Parameters.parameter.part")
    assert part is not None and part.content_reference == "Parameters.parameter"
    assert part.is_backbone
    assert definitions.structure_path("Parameters.parameter.part") == "Parameters.parameter"
    assert set(definitions.children("Parameters.parameter.part")) == \
        set(definitions.children("Parameters.parameter"))
    assert "valueString" in definitions.properties("Parameters.parameter.part")
    assert not definitions.children("Nope.nothing")


def test_summary_and_mandatory_elements(definitions: Definitions) -> None:
    summary = definitions.summary_elements("Patient")
    assert {"id", "meta", "identifier", "name", "gender", "birthDate", "deceased[x]",
            "link"} <= set(summary)
    assert "contact" not in summary and "text" not in summary
    assert definitions.mandatory_elements("Patient") == ()
    assert definitions.mandatory_elements("Observation") == ("status", "code")
    assert set(definitions.mandatory_elements("Encounter")) == {"status", "class"}
    assert "medication[x]" in definitions.mandatory_elements("MedicationRequest")
    assert definitions.summary_elements("Nope") == ()


def test_required_bindings(definitions: Definitions) -> None:
    bindings = definitions.required_bindings()
    assert bindings["Encounter.status"] == "http://hl7.org/fhir/ValueSet/encounter-status"
    assert bindings["Condition.clinicalStatus"] == \
        "http://hl7.org/fhir/ValueSet/condition-clinical"
    assert all("|" not in url for url in bindings.values())
