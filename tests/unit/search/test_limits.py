"""The limits of one search, checked by the parser before anything runs (no database)."""

from __future__ import annotations

import time

import pytest

from fhir_server.definitions import Definitions
from fhir_server.errors import BadRequest
from fhir_server.paths import data_dir
from fhir_server.search.fhirpath import Extractor
from fhir_server.search.limits import SearchLimits, links
from fhir_server.search.parse import Parser
from fhir_server.search.registry import Registry
from fhir_server.settings import load_settings

Pairs = list[tuple[str, str]]


@pytest.fixture(scope="module")
def registry(definitions: Definitions, extractor: Extractor) -> Registry:
    return Registry.load(data_dir("search"), definitions.resource_types, extractor)


@pytest.fixture(scope="module")
def parser(registry: Registry) -> Parser:
    return Parser(registry)


def refused(parser: Parser, pairs: Pairs, types: tuple[str, ...] = ("Patient",),
            strict: bool = False) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parser.parse(types, pairs, strict)
    return caught.value


def names(n: int, name: str = "name") -> Pairs:
    return [(name, f"n{i}") for i in range(n)]


def test_defaults_are_the_settings_defaults() -> None:
    assert SearchLimits() == SearchLimits.of(load_settings({}, env_file=None))
    assert SearchLimits() == SearchLimits(40, 1000, 3)


def test_parameters_count_repetitions(parser: Parser) -> None:
    assert len(parser.parse(["Patient"], names(40), False).clauses) == 40
    error = refused(parser, names(41))
    assert (error.status, error.code) == (400, "too-costly")
    assert "SEARCH_MAX_PARAMETERS" in error.diagnostics and "40" in error.diagnostics


def test_a_thousand_repetitions_are_refused_at_once(parser: Parser) -> None:
    started = time.monotonic()
    assert refused(parser, names(1000)).code == "too-costly"
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(("pairs", "counted"), [
    ([("general-practitioner.name", "x")], 2),                    # a link and its parameter
    ([("general-practitioner:Practitioner.name", "x")], 2),
    ([("_has:Observation:subject:code", "x")], 2),
    ([("_has:Observation:subject:performer.name", "x")], 3),
    ([("_sort", "name,-birthdate")], 2),                          # each key is a join
    ([("_include", "Patient:organization")], 1),
    ([("_revinclude", "Observation:subject")], 1),
    ([("unknown-parameter", "x")], 1),                            # ignored, still counted
    ([("name", ""), ("_count", "5"), ("_summary", "true"), ("_total", "none")], 0),
])
def test_what_counts_as_a_parameter(parser: Parser, pairs: Pairs, counted: int) -> None:
    fits = names(40 - counted)
    parser.parse(["Patient"], fits + pairs, False)
    if counted:
        assert refused(parser, [*fits, ("name", "one-more"), *pairs]).code == "too-costly"


def test_values_count_over_all_parameters(parser: Parser) -> None:
    ors = ",".join(f"v{i}" for i in range(500))
    parser.parse(["Patient"], [("name", ors), ("family", ors)], False)
    error = refused(parser, [("name", ors), ("family", ors), ("given", "x")])
    assert error.code == "too-costly" and "SEARCH_MAX_VALUES" in error.diagnostics
    # an escaped comma separates nothing
    parser.parse(["Patient"], [("name", "\\,".join(["v"] * 1500))], False)


def test_values_are_counted_before_they_are_parsed(parser: Parser) -> None:
    started = time.monotonic()
    assert refused(parser, [("birthdate", ",".join(["2020"] * 200_000))]).code == "too-costly"
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("name", [
    "general-practitioner.organization.partof.name",
    "_has:Observation:subject:_has:Provenance:target:_has:AuditEvent:entity:type",
    "_has:Observation:subject:performer:PractitionerRole.organization.name",
])
def test_three_links_are_allowed(parser: Parser, name: str) -> None:
    assert len(parser.parse(["Patient"], [(name, "x")], True).clauses) == 1


@pytest.mark.parametrize("name", [
    "general-practitioner.organization.partof.partof.name",
    "organization" + ".partof" * 1000 + ".name",                  # was a RecursionError
    "_has:Patient:link:" * 4 + "name",
    "_has:Patient:link:" * 3000 + "name",
    "_has:Observation:subject:_has:Observation:has-member:performer.organization.name",
])
def test_deeper_chains_are_refused(parser: Parser, name: str) -> None:
    error = refused(parser, [(name, "x")])
    assert (error.status, error.code) == (400, "too-costly")
    assert "SEARCH_MAX_CHAIN_DEPTH" in error.diagnostics


def test_links_stop_counting_past_the_limit() -> None:
    assert links("name", 3) == 0
    assert links("subject:Patient.organization.name", 3) == 2
    assert links("_has:Observation:subject:code", 3) == 1
    with pytest.raises(BadRequest) as caught:
        links("_has:Observation", 3)
    assert caught.value.code == "invalid"


def test_limits_apply_to_system_searches_and_criteria(parser: Parser) -> None:
    types = ("Patient", "Observation")
    assert refused(parser, names(41, "_id"), types).code == "too-costly"
    with pytest.raises(BadRequest) as caught:
        parser.criteria("Patient", names(41))
    assert caught.value.code == "too-costly"


def test_limits_come_from_the_settings(registry: Registry) -> None:
    settings = load_settings({"SEARCH_MAX_PARAMETERS": "2", "SEARCH_MAX_VALUES": "3",
                              "SEARCH_MAX_CHAIN_DEPTH": "1"}, env_file=None)
    parser = Parser(registry, limits=SearchLimits.of(settings))
    parser.parse(["Patient"], names(2), False)
    assert "SEARCH_MAX_PARAMETERS" in refused(parser, names(3)).diagnostics
    assert "SEARCH_MAX_VALUES" in refused(parser, [("name", "a,b,c,d")]).diagnostics
    parser.parse(["Patient"], [("general-practitioner.name", "x")], False)
    assert "SEARCH_MAX_CHAIN_DEPTH" in refused(
        parser, [("general-practitioner.organization.name", "x")]).diagnostics


@pytest.mark.parametrize(("rtype", "name", "value"), [
    ("Patient", "name", "a\x00b"),                                # string
    ("Patient", "identifier", "urn:x|a\x00"),                     # token
    ("Patient", "gender", "\x00"),
    ("ValueSet", "url", "http://x/\x00"),                         # uri
    ("Patient", "general-practitioner", "Practitioner/a\x00"),   # reference
    ("Observation", "value-quantity", "5|http://unitsofmeasure.org|m\x00g"),  # quantity
    ("Observation", "code-value-quantity", "a$5|u|m\x00g"),       # composite
    ("Patient", "_id", "a\x00"),
    ("Patient", "name\x00", "x"),                                 # the name too
    ("Patient", "_sort", "name\x00"),
])
def test_nul_is_refused_in_any_value(parser: Parser, rtype: str, name: str,
                                     value: str) -> None:
    for strict in (False, True):
        error = refused(parser, [(name, value)], (rtype,), strict)
        assert (error.status, error.code) == (400, "invalid")
        assert "NUL" in error.diagnostics


def test_long_composite_values_are_a_400(parser: Parser) -> None:
    error = refused(parser, [("code-value-quantity", "a" + "$5" * 50_000)], ("Observation",))
    assert (error.status, error.code) == (400, "invalid")
