"""IndexBuilder.table_rows (the importer's tuple rows) and the runners' root keys."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.definitions import Definitions
from fhir_server.paths import data_dir
from fhir_server.search.fhirpath import Extractor
from fhir_server.search.fhirpath_ops import roots_of
from fhir_server.search.index import IndexBuilder, as_dicts, as_tables
from fhir_server.search.registry import Registry

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation", "id": "o1", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7",
                         "display": "Body\tweight"}], "text": "Weight"},
    "subject": {"reference": "Patient/p1", "identifier": {"system": "urn:s", "value": "1"}},
    "effectiveDateTime": "2020-02-29T10:00:00+01:00",
    "valueQuantity": {"value": 70.5, "unit": "kg", "system": "http://unitsofmeasure.org",
                      "code": "kg"},
    "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                   "valueQuantity": {"value": 120, "unit": "mm[Hg]"}}],
    "contained": [{"resourceType": "Patient", "id": "c1", "gender": "female"}],
    "text": {"status": "generated", "div": "<div>70.5 kg</div>"},
}
PATIENT: dict[str, Any] = {
    "resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1970-01-01",
    "name": [{"family": "Doe", "given": ["John"]}], "telecom": [{"value": "A@B.example"}],
}


@pytest.fixture(scope="module")
def builder(definitions: Definitions, extractor: Extractor) -> IndexBuilder:
    registry = Registry.load(data_dir("search"), definitions.resource_types, extractor)
    return IndexBuilder(registry, ("https://h.example/fhir",))


@pytest.mark.parametrize("resource", [OBSERVATION, PATIENT], ids=["Observation", "Patient"])
def test_tuple_rows_are_the_json_rows(builder: IndexBuilder, resource: dict[str, Any]) -> None:
    tables = builder.table_rows(resource)
    assert as_dicts(tables) == builder.rows(resource)
    assert as_tables(as_dicts(tables)) == tables
    assert {"token", "text"} <= set(tables)


@pytest.mark.parametrize("resource", [OBSERVATION, PATIENT], ids=["Observation", "Patient"])
def test_skipping_parameters_by_root_keys_changes_no_row(builder: IndexBuilder,
                                                         resource: dict[str, Any]) -> None:
    expected = builder.rows(resource)
    for rtype in ("Observation", "Patient"):
        params, plan = builder._indexed(rtype)
        assert any(roots is not None for _, _, roots in plan)
        builder._plans[rtype] = (params, len(params), [(p, k, None) for p, k, _ in plan])
    try:
        assert builder.rows(resource) == expected
    finally:
        builder._plans.clear()


@pytest.mark.parametrize(("expression", "rtype", "roots"), [
    ("Patient.gender", "Patient", ("gender",)),
    ("Patient.name.given", "Patient", ("name",)),
    ("Patient.name | Patient.address", "Patient", ("name", "address")),
    ("Observation.value as Quantity", "Observation", ("valueQuantity",)),
    ("Observation.subject.where(resolve() is Patient)", "Observation", ("subject",)),
    ("Patient.deceased.exists() and Patient.deceased != false", "Patient", None),
])
def test_runners_name_their_root_keys(extractor: Extractor, expression: str, rtype: str,
                                      roots: tuple[str, ...] | None) -> None:
    run = extractor.compile(expression, rtype)
    assert run is not None
    assert roots_of(run) == roots
