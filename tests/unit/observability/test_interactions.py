"""Labels of a request: the route table's template and interaction, never the raw path."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fhir_server.api.router import Route
from fhir_server.api.routes import ROUTES
from fhir_server.observability.interactions import ROUTE_KEY, UNMATCHED, classify

FHIR_INTERACTIONS = {
    "read", "vread", "update", "patch", "delete", "history-instance", "history-type",
    "history-system", "create", "conditional-update", "conditional-patch",
    "conditional-delete", "search-type", "search-system", "search-compartment",
    "capabilities", "transaction/batch", "operation"}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.template}")
def test_fhir_requests_carry_the_matched_route(route: Route) -> None:
    info = classify({ROUTE_KEY: route, "path": "/fhir/Patient/123"})
    assert info.route == route.template and info.route.startswith("/fhir")
    assert info.interaction == route.interaction
    assert info.interaction in FHIR_INTERACTIONS
    assert info.typed == ("{resource_type}" in route.path)


def test_the_table_names_the_expected_templates() -> None:
    named = {(r.method, r.template): r.interaction for r in ROUTES}
    assert named[("GET", "/fhir/{resource_type}/{id}")] == "read"
    assert named[("GET", "/fhir/{resource_type}/{id}/_history/{vid}")] == "vread"
    assert named[("POST", "/fhir")] == "transaction/batch"
    assert named[("GET", "/fhir/{compartment}/{id}/{resource_type}")] == "search-compartment"
    assert named[("POST", "/fhir/$reindex")] == "operation"


def test_other_routes_use_the_starlette_template() -> None:
    info = classify({"route": SimpleNamespace(path="/api/v1/health")})
    assert info == ("/api/v1/health", "other", False)


def test_unmatched_requests_have_no_path_label() -> None:
    assert classify({"path": "/nowhere/42"}) == (UNMATCHED, "other", False)
    assert classify({"route": SimpleNamespace(path=None)}) == (UNMATCHED, "other", False)
