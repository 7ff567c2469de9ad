"""$validate's request parsing (api.validate) and the routes that run it."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.api.router import SIGNED_IN, Router
from fhir_server.api.routes import ROUTES, VALIDATE
from fhir_server.api.validate import _from_parameters, _wrapped
from fhir_server.errors import BadRequest


def test_the_routes_and_what_they_need() -> None:
    router = Router(ROUTES)
    for method, path, needs in (("POST", "Patient/$validate", SIGNED_IN),
                                ("GET", "Patient/p-1/$validate", "r"),
                                ("POST", "Observation/o-1/$validate", "r")):
        route, _ = router.match(method, path)
        assert (route.operation, route.permission) == (VALIDATE, needs)
    assert VALIDATE.id == "Resource-validate"


@pytest.mark.parametrize(("body", "url_type", "wrapped"), [
    ({"resourceType": "Parameters", "parameter": []}, "Patient", True),
    ({"resourceType": "Patient"}, "Patient", False),
    # on Parameters/$validate a Parameters is the resource, unless it wraps one
    ({"resourceType": "Parameters", "parameter": [{"name": "a"}]}, "Parameters", False),
    ({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Parameters"}}]}, "Parameters",
     True),
    ([], "Patient", False),
])
def test_a_parameters_body_or_the_resource(body: Any, url_type: str, wrapped: bool) -> None:
    assert _wrapped(body, url_type) is wrapped


def test_parameters_by_name() -> None:
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Patient"}},
        {"name": "mode", "valueCode": "update"},
        {"name": "profile", "valueCanonical": "http://x/p"}]}
    assert _from_parameters(body) == {"resource": {"resourceType": "Patient"},
                                      "mode": "update", "profile": "http://x/p"}


@pytest.mark.parametrize(("parts", "message"), [
    ([{"name": "mode", "valueCode": "create"}, {"name": "mode", "valueCode": "update"}],
     "$validate takes mode once"),
    ([{"name": "resource"}], "the parameter 'resource' needs a resource"),
    ([{"name": "mode", "valueInteger": 1}],
     "the parameter 'mode' needs a value (valueCode or valueString)"),
    ([{"name": "x"}], "$validate has no parameter 'x' (resource, mode, profile)"),
    (["text"], "$validate has no parameter None (resource, mode, profile)"),
])
def test_broken_parameters(parts: list[Any], message: str) -> None:
    with pytest.raises(BadRequest) as raised:
        _from_parameters({"resourceType": "Parameters", "parameter": parts})
    assert raised.value.diagnostics == message
