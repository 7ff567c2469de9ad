"""The operations' answers from the service (no HTTP, no database)."""

from __future__ import annotations

import pytest

from fhir_server.errors import BadRequest, NotFound, Unprocessable
from fhir_server.terminology import TerminologyService
from fhir_server.terminology.codesystems import Catalog
from fhir_server.terminology.operations import Coded, ExpandQuery
from tests.unit.terminology.conftest import SYS

VS = "http://example.org/vs/"


@pytest.fixture
def service(catalog: Catalog) -> TerminologyService:
    return TerminologyService(catalog)


def test_expand_pages_filters_and_flags(service: TerminologyService) -> None:
    vs = service.value_set(VS + "all")
    out = service.expand(vs, ExpandQuery(filter="A", count=2, offset=1))
    expansion = out["expansion"]
    # "a" in code or display, any case: animal, mammal, cat, sparrow
    assert expansion["total"] == 4 and expansion["offset"] == 1
    assert expansion["parameter"] == [{"name": "filter", "valueString": "A"},
                                      {"name": "count", "valueInteger": 2},
                                      {"name": "offset", "valueInteger": 1}]
    assert expansion["contains"] == [
        {"system": SYS, "version": "1", "code": "mammal", "display": "Mammal"},
        {"system": SYS, "version": "1", "code": "cat", "display": "Cat"}]
    first = service.expand(vs, ExpandQuery(count=1))["expansion"]["contains"][0]
    assert first["abstract"] is True
    designations = service.expand(vs, ExpandQuery(filter="dog", include_designations=True))
    assert designations["expansion"]["contains"][0]["designation"] == [
        {"language": "de", "value": "Hund"}]


def test_expand_refuses_what_it_cannot(service: TerminologyService) -> None:
    with pytest.raises(Unprocessable) as caught:
        service.expand(service.value_set(VS + "snomed"), ExpandQuery())
    assert caught.value.code == "not-supported" and caught.value.status == 422
    with pytest.raises(NotFound):
        service.value_set(VS + "nope")


def test_validate_code(service: TerminologyService) -> None:
    vs = service.value_set(VS + "mammals")
    ok = service.validate_code(vs, [Coded(SYS, "dog")])
    assert ok == {"resourceType": "Parameters", "parameter": [
        {"name": "result", "valueBoolean": True}, {"name": "display", "valueString": "Dog"}]}
    wrong = service.validate_code(vs, [Coded(SYS, "dog", "Wolf")])["parameter"]
    assert wrong[0]["valueBoolean"] is True and "'Wolf'" in wrong[1]["valueString"]
    no = service.validate_code(vs, [Coded(SYS, "bird")])["parameter"]
    assert no == [{"name": "result", "valueBoolean": False}, {
        "name": "message", "valueString": f"{SYS}#bird is not in the value set {VS}mammals"}]
    with pytest.raises(BadRequest):
        service.validate_code(vs, [])


def test_lookup(service: TerminologyService) -> None:
    out = service.lookup(Coded(SYS, "sparrow"))["parameter"]
    assert out[:3] == [{"name": "name", "valueString": "Animals"},
                       {"name": "version", "valueString": "1"},
                       {"name": "display", "valueString": "Sparrow"}]
    props = [(p["part"][0]["valueCode"], p["part"][1]) for p in out if p["name"] == "property"]
    assert ("parent", {"name": "value", "valueCode": "bird"}) in props
    assert ("inactive", {"name": "value", "valueBoolean": True}) in props
    children = [v for c, v in service_props(service, "mammal") if c == "child"]
    assert [v["valueCode"] for v in children] == ["dog", "cat"]
    with pytest.raises(NotFound, match="not in the code system"):
        service.lookup(Coded(SYS, "unicorn"))
    with pytest.raises(NotFound, match="not known"):
        service.lookup(Coded("http://snomed.info/sct", "1"))
    with pytest.raises(BadRequest, match="needs a system"):
        service.lookup(Coded(None, "dog"))


def service_props(service: TerminologyService, code: str) -> list[tuple[str, dict[str, str]]]:
    out = service.lookup(Coded(SYS, code))["parameter"]
    return [(p["part"][0]["valueCode"], p["part"][1]) for p in out if p["name"] == "property"]


def test_subsumes(service: TerminologyService) -> None:
    def outcome(a: str, b: str) -> str:
        found = service.subsumes(Coded(SYS, a), Coded(SYS, b))["parameter"][0]["valueCode"]
        return str(found)
    assert outcome("animal", "sparrow") == "subsumes"
    assert outcome("cat", "mammal") == "subsumed-by"
    with pytest.raises(BadRequest, match="one system"):
        service.subsumes(Coded(SYS, "a"), Coded("http://other", "b"))


def test_related_for_search(service: TerminologyService) -> None:
    assert service.related(SYS, "mammal", "below") == ("mammal", "dog", "cat")
    assert service.related(SYS, "dog", "above") == ("dog", "mammal", "animal")
    assert service.related("http://snomed.info/sct", "1", "below") is None
