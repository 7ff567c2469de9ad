"""The router's match: the route table's answer for every path shape, remembered."""

from __future__ import annotations

import itertools

import pytest

from fhir_server.api.router import PARAM_PATTERNS, Router
from fhir_server.api.routes import ROUTES
from fhir_server.errors import FhirError, MethodNotAllowed, NotFound

SEGMENTS = ["Patient", "Observation", "metadata", "_history", "_search", "_jobs", "1",
            "abc-1.2", "$reindex", "$nope", "*", "OperationDefinition", "x y", "", "Ab"]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def outcome(router: Router, method: str, path: str) -> object:
    try:
        route, params = router.match(method, path)
    except FhirError as exc:
        return type(exc), exc.diagnostics, dict(exc.headers or {})
    return route, params


def test_remembered_shapes_answer_as_the_table_does() -> None:
    """Every path of up to three segments, asked twice (the second answer comes from
    the shape cache), equals the answer of a router that never saw it before."""
    cached = Router(ROUTES)
    for length in range(4):
        for parts in itertools.product(SEGMENTS, repeat=length):
            path = "/".join(parts)
            for method in METHODS:
                first = outcome(cached, method, path)
                assert outcome(cached, method, path) == first
                assert outcome(Router(ROUTES), method, path) == first, (method, path)


def test_parameter_patterns_fit_the_shapes() -> None:
    """The cache classes segments as type-like or not: each pattern must give one
    verdict per class, or a remembered shape could answer for a path it does not fit."""
    import re
    type_like, other = ["Patient", "Ab", "OperationDefinition"], ["1", "a", "x y", "pAtient"]
    for pattern in PARAM_PATTERNS.values():
        compiled = re.compile(pattern)
        assert len({bool(compiled.fullmatch(s)) for s in type_like}) == 1
        assert len({bool(compiled.fullmatch(s)) for s in other}) == 1
        assert not compiled.fullmatch("") and not compiled.fullmatch("$op")


@pytest.mark.parametrize(("method", "path", "error"), [
    ("DELETE", "metadata", MethodNotAllowed), ("GET", "Patient/1/2/3/4", NotFound),
    ("POST", "Patient/$nope", NotFound)])
def test_refusals(method: str, path: str, error: type[FhirError]) -> None:
    with pytest.raises(error):
        Router(ROUTES).match(method, path)


async def _noop(request: object, ctx: object) -> None:  # a handler never called
    return None


def test_every_route_names_what_the_caller_needs() -> None:
    from fhir_server.api.router import ADMIN, PUBLIC, SIGNED_IN, Route

    needs = {(r.method, r.template): r.permission for r in ROUTES}
    assert needs[("GET", "/fhir/metadata")] == PUBLIC
    assert needs[("POST", "/fhir")] == SIGNED_IN
    assert needs[("POST", "/fhir/$reindex")] == ADMIN
    assert needs[("GET", "/fhir/{resource_type}/{id}")] == "r"
    assert needs[("GET", "/fhir/{resource_type}")] == "s"
    assert needs[("DELETE", "/fhir/{resource_type}")] == "d"
    assert set(needs.values()) <= {PUBLIC, SIGNED_IN, ADMIN, *"cruds"}
    bare = Route("POST", "$x", "operation", _noop, "an operation without its access")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must name its access"):
        Router([bare])


@pytest.mark.parametrize(("method", "path", "needed"), [
    ("POST", "SearchParameter", "admin"),
    ("PUT", "SearchParameter", "admin"),  # conditional update
    ("PATCH", "SearchParameter", "admin"),
    ("DELETE", "SearchParameter", "admin"),
    ("PUT", "SearchParameter/sp-1", "admin"),
    ("PATCH", "SearchParameter/sp-1", "admin"),
    ("DELETE", "SearchParameter/sp-1", "admin"),
    ("GET", "SearchParameter/sp-1", "r"),
    ("GET", "SearchParameter", "s"),
    ("POST", "SearchParameter/_search", "s"),
    ("PUT", "Patient/p-1", "u"),
    ("DELETE", "_jobs/1", "signed-in"),  # the handler: an export's client, or the admin
])
def test_changing_a_search_parameter_needs_an_operator(method: str, path: str,
                                                        needed: str) -> None:
    from fhir_server.api.router import permission

    route, params = Router(ROUTES).match(method, path)
    assert permission(route, params) == needed
