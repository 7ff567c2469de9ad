"""Bindings by strength, over value sets from an operator's package."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.terminology import TerminologyService
from fhir_server.terminology.operations import ExpandQuery
from fhir_server.validation.profiles import ProfileSet
from tests.unit.validation.profiles.conftest import BASE, COLOUR_SYSTEM, COLOURS
from tests.unit.validation.profiles.helpers import check

URL = BASE + "bound-observation"
RED = {"coding": [{"system": COLOUR_SYSTEM, "code": "red"}]}
BLUE = {"coding": [{"system": COLOUR_SYSTEM, "code": "blue"}]}


def _observation(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": RED, **elements}


def test_codes_in_the_value_sets_pass(profiles: ProfileSet) -> None:
    assert check(profiles, _observation(method=RED, bodySite=RED), URL) == []


def test_required_binding_is_an_error(profiles: ProfileSet) -> None:
    assert check(profiles, _observation(code=BLUE), URL) == [
        ("error", "code-invalid", "Observation.code", "Observation.code: the value is not "
         f"in the value set {COLOURS} (required binding; profile {URL})")]


@pytest.mark.parametrize(("element", "strength"), [("method", "extensible"),
                                                   ("bodySite", "preferred")])
def test_extensible_and_preferred_bindings_warn(profiles: ProfileSet, element: str,
                                                strength: str) -> None:
    assert check(profiles, _observation(**{element: BLUE}), URL) == [
        ("warning", "code-invalid", f"Observation.{element}", f"Observation.{element}: the "
         f"value is not in the value set {COLOURS} ({strength} binding; profile {URL})")]


def test_example_binding_is_not_checked(profiles: ProfileSet) -> None:
    assert check(profiles, _observation(interpretation=[BLUE]), URL) == []


def test_text_only_concept_is_not_in_a_required_value_set(profiles: ProfileSet) -> None:
    assert [i[:3] for i in check(profiles, _observation(code={"text": "red"}), URL)] == [
        ("error", "code-invalid", "Observation.code")]


def test_the_package_terminology_is_served_by_the_operations(profiles: ProfileSet) -> None:
    """The profile folders' ValueSets and CodeSystems join the specification's in the
    catalog the terminology operations answer from."""
    assert profiles.catalog is not None
    service = TerminologyService(profiles.catalog)
    expansion = service.expand(service.value_set(COLOURS), ExpandQuery())["expansion"]
    assert [c["code"] for c in expansion["contains"]] == ["red", "green"]
    gender = service.value_set("http://hl7.org/fhir/ValueSet/administrative-gender")
    assert service.expand(gender, ExpandQuery())["expansion"]["total"] == 4
