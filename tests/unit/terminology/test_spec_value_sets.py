"""Expansion of required-binding value sets from valuesets.json."""

from __future__ import annotations

import pytest

from fhir_server.paths import data_dir
from fhir_server.terminology import Terminology, expand_packed

VS = "http://hl7.org/fhir/ValueSet/"


@pytest.fixture(scope="module")
def terminology() -> Terminology:
    urls = ["administrative-gender", "FHIR-version", "item-type", "condition-clinical",
            "ucum-units", "encounter-status", "nope"]
    return Terminology.unpack(expand_packed(data_dir("profiles"), [VS + u for u in urls]))


def test_whole_code_system(terminology: Terminology) -> None:
    assert terminology.codes(VS + "administrative-gender") == frozenset(
        {"male", "female", "other", "unknown"})
    expansion = terminology.expansion(VS + "administrative-gender")
    assert expansion is not None
    assert ("http://hl7.org/fhir/administrative-gender", "male") in expansion


def test_current_fhir_version_is_included(terminology: Terminology) -> None:
    codes = terminology.codes(VS + "FHIR-version")
    assert codes is not None and "4.0.1" in codes


def test_abstract_codes_are_excluded(terminology: Terminology) -> None:
    codes = terminology.codes(VS + "item-type")
    assert codes is not None and "group" in codes and "question" not in codes


def test_coded_value_set(terminology: Terminology) -> None:
    expansion = terminology.expansion(VS + "condition-clinical")
    assert expansion is not None
    assert ("http://terminology.hl7.org/CodeSystem/condition-clinical", "active") in expansion


def test_unexpandable_and_unknown(terminology: Terminology) -> None:
    assert terminology.expansion(VS + "ucum-units") is None  # external code system
    assert terminology.codes(VS + "nope") is None
