"""A small catalog: a nested code system with parent properties, value sets over it."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.terminology.codesystems import Catalog, pack, unpack

SYS = "http://example.org/cs/animals"

CODE_SYSTEM: dict[str, Any] = {
    "resourceType": "CodeSystem", "id": "animals", "url": SYS, "version": "1",
    "name": "Animals", "content": "complete",
    "property": [{"code": "notSelectable", "type": "boolean"}],
    "concept": [
        {"code": "animal", "display": "Animal",
         "property": [{"code": "notSelectable", "valueBoolean": True}],
         "concept": [
             {"code": "mammal", "display": "Mammal", "concept": [
                 {"code": "dog", "display": "Dog",
                  "designation": [{"language": "de", "value": "Hund"}]},
                 {"code": "cat", "display": "Cat"}]},
             {"code": "bird", "display": "Bird"}]},
        # a parent by property instead of nesting
        {"code": "sparrow", "display": "Sparrow",
         "property": [{"code": "parent", "valueCode": "bird"},
                      {"code": "inactive", "valueBoolean": True}]},
        {"code": "rock", "display": "Rock"},
    ],
}


def value_set(vs_id: str, compose: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "ValueSet", "id": vs_id, "url": f"http://example.org/vs/{vs_id}",
            "status": "active", "compose": compose}


VALUE_SETS = [
    value_set("all", {"include": [{"system": SYS}]}),
    value_set("mammals", {"include": [{"system": SYS, "filter": [
        {"property": "concept", "op": "is-a", "value": "mammal"}]}]}),
    value_set("birds-below", {"include": [{"system": SYS, "filter": [
        {"property": "concept", "op": "descendent-of", "value": "bird"}]}]}),
    value_set("not-animals", {"include": [{"system": SYS, "filter": [
        {"property": "concept", "op": "is-not-a", "value": "animal"}]}]}),
    value_set("listed", {"include": [{"system": SYS, "concept": [
        {"code": "animal"}, {"code": "rock", "display": "A rock"}]}]}),
    value_set("nested", {"include": [{"valueSet": ["http://example.org/vs/mammals"]}],
                         "exclude": [{"system": SYS, "concept": [{"code": "cat"}]}]}),
    value_set("snomed", {"include": [{"system": "http://snomed.info/sct", "filter": [
        {"property": "concept", "op": "is-a", "value": "404684003"}]}]}),
    value_set("ucum", {"include": [{"system": "http://unitsofmeasure.org"}]}),
    value_set("snomed-listed", {"include": [{"system": "http://snomed.info/sct",
                                             "concept": [{"code": "1", "display": "One"}]}]}),
    value_set("loop", {"include": [{"valueSet": ["http://example.org/vs/loop"]}]}),
    value_set("regex", {"include": [{"system": SYS, "filter": [
        {"property": "code", "op": "regex", "value": "[cd].*"}]}]}),
]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return unpack(pack([{"resourceType": "Bundle", "entry": [
        {"resource": r} for r in [CODE_SYSTEM, *VALUE_SETS]]}]))
