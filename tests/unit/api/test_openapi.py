"""The hand-written OpenAPI document of the FHIR API (no database needed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from fhir_server.api.openapi import FHIR_JSON, build_openapi, openapi_provider

TYPES = ["Patient", "Encounter"]
SEARCH = {"Patient": [("name", "string", "A portion of the name"),
                      ("birthdate", "date", "Date of birth"),
                      ("_count", "number", "duplicate of a common parameter")]}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The document as served: the provider's JSON, parsed back."""
    document: dict[str, Any] = orjson.loads(
        openapi_provider(TYPES, version="1.2.3", search_params=SEARCH)())
    return document


def test_openapi_json_paths(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1") and spec["info"]["version"] == "1.2.3"
    expected = {
        "/fhir/metadata": {"get"}, "/fhir/_history": {"get"},
        "/api/v1/health": {"get"}, "/api/v1/ready": {"get"}, "/metrics": {"get"},
    }
    for t in TYPES:
        expected |= {
            f"/fhir/{t}": {"get", "post"},
            f"/fhir/{t}/{{id}}": {"get", "put", "delete"},
            f"/fhir/{t}/{{id}}/_history": {"get"},
            f"/fhir/{t}/{{id}}/_history/{{vid}}": {"get"},
            f"/fhir/{t}/_history": {"get"},
        }
    assert set(spec["paths"]) == set(expected)
    for path, methods in expected.items():
        assert set(spec["paths"][path]) & HTTP_METHODS == methods, path
    tags = [tag["name"] for tag in spec["tags"]]
    assert tags[:2] == TYPES
    assert spec["paths"]["/fhir/Encounter/{id}"]["put"]["tags"] == ["Encounter"]


def test_openapi_fhir_media_types_and_headers(spec: dict[str, Any]) -> None:
    read = spec["paths"]["/fhir/Patient/{id}"]["get"]
    ok = read["responses"]["200"]
    assert ok["content"][FHIR_JSON]["schema"] == {"$ref": "#/components/schemas/Patient"}
    assert set(ok["headers"]) == {"ETag", "Last-Modified"}
    assert spec["components"]["schemas"]["Patient"]["properties"]["resourceType"]["const"] \
        == "Patient"
    create = spec["paths"]["/fhir/Patient"]["post"]
    assert create["requestBody"]["content"][FHIR_JSON]["schema"]["$ref"].endswith("/Patient")
    assert "Location" in create["responses"]["201"]["headers"]
    not_found = spec["components"]["responses"][
        read["responses"]["404"]["$ref"].rsplit("/", 1)[1]]
    assert not_found["content"][FHIR_JSON]["schema"]["$ref"].endswith("/OperationOutcome")
    header_params = {p["name"] for p in spec["components"]["parameters"].values()
                     if p["in"] == "header"}
    assert header_params == {"If-Match", "If-None-Match", "If-Modified-Since", "Prefer"}
    update_params = spec["paths"]["/fhir/Patient/{id}"]["put"]["parameters"]
    assert {"$ref": "#/components/parameters/If-Match"} in update_params


def test_search_parameters_listed(spec: dict[str, Any]) -> None:
    params = spec["paths"]["/fhir/Patient"]["get"]["parameters"]
    refs = [p["$ref"].rsplit("/", 1)[1] for p in params if "$ref" in p]
    inline = {p["name"]: p for p in params if "$ref" not in p}
    assert refs == ["_count", "_summary", "_elements", "_format"]
    assert set(inline) == {"name", "birthdate"}  # the duplicate _count is dropped
    assert inline["birthdate"]["x-fhir-search-type"] == "date"
    encounter = spec["paths"]["/fhir/Encounter"]["get"]["parameters"]
    assert all("$ref" in p for p in encounter)


def test_openapi_validates(spec: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(spec)


def test_openapi_refs_resolve(spec: dict[str, Any]) -> None:

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    refs = list(walk(spec))
    assert refs
    for ref in refs:
        parts = ref.split("/")
        assert parts[:2] == ["#", "components"] and len(parts) == 4, ref
        assert parts[3] in spec["components"][parts[2]], ref


def test_build_openapi_is_pure_and_checks_names() -> None:
    a = build_openapi(["Patient", "Patient"], version="1")
    assert a == build_openapi(["Patient"], version="1") and a is not build_openapi(
        ["Patient"], version="1")
    with pytest.raises(ValueError):
        build_openapi(["Patient", "../etc"], version="1")
    # Bundle/OperationOutcome keep their richer schema when listed as types too.
    spec = build_openapi(["Bundle", "OperationOutcome"], version="1")
    assert "entry" in spec["components"]["schemas"]["Bundle"]["properties"]
    assert "issue" in spec["components"]["schemas"]["OperationOutcome"]["properties"]


def test_openapi_provider_caches() -> None:
    with pytest.raises(ValueError):
        openapi_provider(["patient"], version="1")  # checked eagerly, not on first request
    get = openapi_provider(["Patient"], version="1")
    assert get() is get()
    assert "/fhir/Patient" in orjson.loads(get())["paths"]
