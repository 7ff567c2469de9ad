"""Descendants, ancestors and subsumption from nesting and parent properties."""

from __future__ import annotations

from fhir_server.terminology.codesystems import Catalog, pack, unpack
from fhir_server.terminology.hierarchy import ancestors, descendants, subsumes
from tests.unit.terminology.conftest import SYS


def test_descendants_follow_nesting_and_parent_properties(catalog: Catalog) -> None:
    system = catalog.code_systems[SYS]
    assert descendants(system, "animal") == ["animal", "mammal", "bird", "dog", "cat",
                                             "sparrow"]
    assert descendants(system, "rock") == ["rock"]


def test_ancestors(catalog: Catalog) -> None:
    system = catalog.code_systems[SYS]
    assert ancestors(system, "sparrow") == ["sparrow", "bird", "animal"]


def test_subsumes(catalog: Catalog) -> None:
    system = catalog.code_systems[SYS]
    assert subsumes(system, "dog", "dog") == "equivalent"
    assert subsumes(system, "animal", "dog") == "subsumes"
    assert subsumes(system, "sparrow", "animal") == "subsumed-by"
    assert subsumes(system, "dog", "bird") == "not-subsumed"
    assert subsumes(system, "rock", "animal") == "not-subsumed"


def test_a_cycle_ends_the_walk() -> None:
    cs = {"resourceType": "CodeSystem", "url": "http://c", "content": "complete",
          "concept": [{"code": "a", "property": [{"code": "parent", "valueCode": "b"}]},
                      {"code": "b", "property": [{"code": "parent", "valueCode": "a"}]}]}
    system = unpack(pack([cs])).code_systems["http://c"]
    assert sorted(descendants(system, "a")) == ["a", "b"]
    assert subsumes(system, "a", "b") == "subsumes"
