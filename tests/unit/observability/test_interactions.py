"""Interaction names from method and route template."""

from __future__ import annotations

import pytest

from fhir_server.observability.interactions import INTERACTIONS, UNMATCHED, classify

CASES = [
    ("GET", "/fhir/{resource_type}/{id}", "read"),
    ("HEAD", "/fhir/{resource_type}/{id}", "read"),
    ("GET", "/fhir/{resource_type}/{id}/_history/{vid}", "vread"),
    ("PUT", "/fhir/{resource_type}/{id}", "update"),
    ("PATCH", "/fhir/{resource_type}/{id}", "patch"),
    ("DELETE", "/fhir/{resource_type}/{id}", "delete"),
    ("POST", "/fhir/{resource_type}", "create"),
    ("PUT", "/fhir/{resource_type}", "conditional-update"),
    ("PATCH", "/fhir/{resource_type}", "conditional-patch"),
    ("DELETE", "/fhir/{resource_type}", "conditional-delete"),
    ("GET", "/fhir/{resource_type}", "search-type"),
    ("POST", "/fhir/{resource_type}/_search", "search-type"),
    ("GET", "/fhir", "search-system"),
    ("GET", "/fhir/", "search-system"),
    ("POST", "/fhir/_search", "search-system"),
    ("GET", "/fhir/{compartment}/{id}/{resource_type}", "search-compartment"),
    ("GET", "/fhir/{resource_type}/{id}/_history", "history-instance"),
    ("GET", "/fhir/{resource_type}/_history", "history-type"),
    ("GET", "/fhir/_history", "history-system"),
    ("GET", "/fhir/metadata", "capabilities"),
    ("POST", "/fhir", "transaction/batch"),
    ("POST", "/fhir/", "transaction/batch"),
    ("POST", "/fhir/$reindex", "operation"),
    ("POST", "/fhir/{resource_type}/$reindex", "operation"),
    ("GET", "/fhir/{resource_type}/{id}/$everything", "operation"),
    ("GET", "/fhir/_jobs/{job_id}", "other"),
    ("GET", "/api/v1/health", "other"),
    ("GET", "/metrics", "other"),
    ("OPTIONS", "/fhir/{resource_type}/{id}", "other"),
]


@pytest.mark.parametrize(("method", "template", "interaction"), CASES)
def test_classify(method: str, template: str, interaction: str) -> None:
    info = classify(method, template)
    assert info.interaction == interaction
    assert info.interaction in INTERACTIONS
    assert info.route == template
    assert info.typed == ("{resource_type}" in template)


def test_unmatched_requests_have_no_path_label() -> None:
    assert classify("GET", None) == (UNMATCHED, "other", False)
