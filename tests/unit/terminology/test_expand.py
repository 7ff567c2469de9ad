"""The one expander: compose rules, filters, members valid in data, what cannot be."""

from __future__ import annotations

import pytest

from fhir_server.paths import data_dir
from fhir_server.terminology import Terminology, expand_packed
from fhir_server.terminology.codesystems import Catalog, load_catalog
from fhir_server.terminology.expand import CannotExpand, Expander
from tests.unit.terminology.conftest import SYS

VS = "http://example.org/vs/"


def codes(expander: Expander, name: str) -> list[str]:
    return [e.code for e in expander.expand(VS + name)]


def test_whole_system_in_definition_order(catalog: Catalog) -> None:
    assert codes(Expander(catalog), "all") == ["animal", "mammal", "dog", "cat", "bird",
                                               "sparrow", "rock"]


def test_filters(catalog: Catalog) -> None:
    expander = Expander(catalog)
    assert codes(expander, "mammals") == ["mammal", "dog", "cat"]
    assert codes(expander, "birds-below") == ["sparrow"]
    assert codes(expander, "not-animals") == ["rock"]
    assert codes(expander, "regex") == ["dog", "cat"]


def test_included_value_sets_and_excludes(catalog: Catalog) -> None:
    assert codes(Expander(catalog), "nested") == ["mammal", "dog"]


def test_abstract_codes_are_members_only_when_listed(catalog: Catalog) -> None:
    expander = Expander(catalog)
    members = expander.members(VS + "all")
    assert members is not None and (SYS, "animal") not in members and (SYS, "dog") in members
    listed = expander.members(VS + "listed")
    assert listed == frozenset({(SYS, "animal"), (SYS, "rock")})
    assert [e.display for e in expander.expand(VS + "listed")] == ["Animal", "A rock"]


def test_enumerated_codes_of_an_external_system_expand(catalog: Catalog) -> None:
    (entry,) = Expander(catalog).expand(VS + "snomed-listed")
    assert (entry.system, entry.code, entry.display) == ("http://snomed.info/sct", "1", "One")


@pytest.mark.parametrize(("name", "code", "words"), [
    ("snomed", "not-supported", "holds no content of the code system http://snomed.info/sct "
                                "(SNOMED CT)"),
    ("ucum", "too-costly", "http://unitsofmeasure.org (UCUM) is a grammar"),
    ("loop", "not-supported", "includes itself"),
    ("nope", "not-found", "is not known"),
])
def test_what_cannot_be_expanded(catalog: Catalog, name: str, code: str, words: str) -> None:
    expander = Expander(catalog)
    with pytest.raises(CannotExpand) as caught:
        expander.expand(VS + name)
    assert caught.value.code == code and words in caught.value.message
    assert expander.members(VS + name) is None
    with pytest.raises(CannotExpand):  # remembered, raised again
        expander.expand(VS + name)


def test_the_specification_catalog() -> None:
    catalog = load_catalog(data_dir("profiles"))
    assert load_catalog(data_dir("profiles")) is catalog  # read once
    assert len(catalog.code_systems) > 400 and len(catalog.value_sets) > 600
    clinical = catalog.code_system("http://terminology.hl7.org/CodeSystem/condition-clinical")
    assert clinical is not None and clinical.children["active"] == ("recurrence", "relapse")


def test_with_resources_adds_and_overrides(catalog: Catalog) -> None:
    extra = {"resourceType": "ValueSet", "url": VS + "all", "compose": {"include": [
        {"system": SYS, "concept": [{"code": "dog"}]}]}}
    assert codes(Expander(catalog.with_resources([extra])), "all") == ["dog"]
    assert codes(Expander(catalog), "all")[0] == "animal"  # the original is unchanged


def test_packed_for_the_validator() -> None:
    url = "http://hl7.org/fhir/ValueSet/administrative-gender"
    terminology = Terminology.unpack(expand_packed(data_dir("profiles"), [url, VS + "x"]))
    assert terminology.codes(url) == frozenset({"male", "female", "other", "unknown"})
    assert terminology.expansion(VS + "x") is None
