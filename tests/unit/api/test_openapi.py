"""The OpenAPI documents generated from the route table (no database needed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
from openapi_spec_validator import validate

from fhir_server.api.describe import describe
from fhir_server.api.openapi import (
    FHIR_JSON,
    ApiFacts,
    OpenApiDocuments,
    SearchFacts,
    build_system,
    build_type,
    openapi_provider,
)
from fhir_server.api.openapi.operations import shape_of
from fhir_server.api.routes import REINDEX, ROUTES
from fhir_server.definitions import Definitions
from fhir_server.paths import data_dir
from fhir_server.search.fhirpath import Extractor
from fhir_server.search.parse import RESULT_PARAMS, Parser
from fhir_server.search.registry import Registry
from fhir_server.service.compartment import load_compartments
from fhir_server.service.context import ServiceContext

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
_LINK = re.compile(r"\]\(([^)]*)\)")


@cache
def _definitions() -> Definitions:
    return Definitions.load()


def make_facts(registry: Registry | None = None, version: str = "1.2.3") -> ApiFacts:
    """The facts the app builds, from the shipped definitions and search parameters."""
    definitions = _definitions()
    registry = registry or Registry.load(data_dir("search"), definitions.resource_types,
                                         Extractor(definitions))
    types = tuple(sorted(definitions.resource_types))
    return ApiFacts(ROUTES, types, load_compartments(data_dir("search")),
                    SearchFacts(registry, Parser(registry), types), version, auth=True)


@pytest.fixture(scope="module")
def facts() -> ApiFacts:
    return make_facts()


@pytest.fixture(scope="module")
def documents(facts: ApiFacts) -> OpenApiDocuments:
    return OpenApiDocuments(facts)


@pytest.fixture(scope="module")
def system(documents: OpenApiDocuments) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(documents.system())
    return doc


@pytest.fixture(scope="module")
def per_type(documents: OpenApiDocuments) -> dict[str, dict[str, Any]]:
    out = {}
    for name in documents.names:
        body = documents.document(name)
        assert body is not None
        out[name] = orjson.loads(body)
    return out


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def _strings(node: Any, key: str) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, str):
                yield v
            else:
                yield from _strings(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)


def _all(system: dict[str, Any], per_type: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [system, *per_type.values()]


# -- completeness: generated from ROUTES, so a new route cannot be forgotten -------------

def test_every_route_has_a_shape() -> None:
    for route in ROUTES:
        shape_of(route)  # KeyError: say what the new interaction takes and answers


def test_every_route_is_in_the_system_document(system: dict[str, Any]) -> None:
    for route in ROUTES:
        op = system["paths"][route.template][route.method.lower()]
        assert op["x-fhir-interaction"] == route.interaction and op["summary"] == route.summary
    assert sum(1 for _ in _operations(system)) == len(ROUTES)


def test_every_type_route_is_in_each_type_document(
        facts: ApiFacts, per_type: dict[str, dict[str, Any]]) -> None:
    typed = [r for r in ROUTES if r.level in ("type", "instance") and r.resource_type is None]
    assert {r.interaction for r in typed} >= {
        "search-type", "create", "conditional-update", "conditional-patch",
        "conditional-delete", "history-type", "read", "update", "patch", "delete",
        "history-instance", "vread", "operation"}
    for name, doc in per_type.items():
        for route in typed:
            path = route.template.replace("{resource_type}", name)
            assert route.method.lower() in doc["paths"][path], (name, path)
        for owner, members in facts.compartments.items():
            if name in members:
                assert "get" in doc["paths"][f"/fhir/{owner}/{{id}}/{name}"]
    assert "get" in per_type["Patient"]["paths"]["/fhir/Patient/{id}/*"]
    assert "/fhir/Observation/{id}/*" not in per_type["Observation"]["paths"]
    # The literal route wins over the generic read, as in the router.
    read = per_type["OperationDefinition"]["paths"]["/fhir/OperationDefinition/{id}"]["get"]
    assert read["operationId"] == "readDefinitionOperationDefinition"
    # A route of one type is in that type's document only.
    assert "get" in per_type["Patient"]["paths"]["/fhir/Patient/{id}/$everything"]
    assert all("/fhir/Patient/{id}/$everything" not in doc["paths"]
               for name, doc in per_type.items() if name != "Patient")


def test_system_paths_and_enums(facts: ApiFacts, system: dict[str, Any]) -> None:
    assert set(system["paths"]) == {r.template for r in ROUTES}
    params = system["components"]["parameters"]
    assert params["resource_type"]["schema"]["enum"] == list(facts.resource_types)
    assert params["compartment"]["schema"]["enum"] == ["Patient"]
    assert {"$ref": "#/components/parameters/_type"} in system["paths"]["/fhir"]["get"][
        "parameters"]


# -- validity, size, ids ----------------------------------------------------------------

def test_documents_validate(system: dict[str, Any],
                            per_type: dict[str, dict[str, Any]]) -> None:
    validate(system)
    for doc in per_type.values():
        validate(doc)


def test_documents_are_small(documents: OpenApiDocuments) -> None:
    assert len(documents.system()) < 150_000
    for name in documents.names:
        assert len(documents.document(name) or b"") < 150_000, name


def test_operation_ids_are_unique_readable_and_stable(
        facts: ApiFacts, system: dict[str, Any],
        per_type: dict[str, dict[str, Any]]) -> None:
    ids = [op["operationId"] for doc in _all(system, per_type) for _, _, op in _operations(doc)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", i) for i in ids)
    assert {op["operationId"] for _, _, op in _operations(system)} >= {
        "capabilities", "processBundle", "searchSystemGet", "searchSystemPost", "read",
        "reindexSystem", "reindexType", "jobStatus", "searchCompartmentAll"}
    assert per_type["Patient"]["paths"]["/fhir/Patient/{id}"]["get"]["operationId"] \
        == "readPatient"
    again = OpenApiDocuments(make_facts())
    assert again.system() == OpenApiDocuments(facts).system()
    assert again.document("Observation") == OpenApiDocuments(facts).document("Observation")


def test_refs_resolve_and_nothing_unused(system: dict[str, Any],
                                         per_type: dict[str, dict[str, Any]]) -> None:
    for doc in _all(system, per_type):
        refs = set(_strings(doc, "$ref"))
        for ref in refs:
            _, _, kind, name = ref.split("/", 3)
            assert name in doc["components"][kind], ref
        # (security schemes are named by "security", not referred to)
        defined = {f"#/components/{k}/{n}" for k, items in doc["components"].items()
                   for n in items if k != "securitySchemes"}
        assert defined == refs


# -- search parameters -------------------------------------------------------------------

def _search_params(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for key, p in doc["components"]["parameters"].items()
            if key.startswith("search.")}


def test_search_parameters_are_what_the_parser_answers(
        facts: ApiFacts, per_type: dict[str, dict[str, Any]]) -> None:
    parser = cast(Parser, facts.search.parser)
    registry = cast(Registry, facts.search.registry)
    for name, doc in per_type.items():
        listed = _search_params(doc)
        assert "_query" not in listed  # refused by the parser (400)
        expected = {c for c, p in registry.params(name).items()
                    if facts.search.understood([name], p)}
        assert set(listed) == expected, name
        assert not set(listed) & RESULT_PARAMS
    patient = _search_params(per_type["Patient"])
    assert {"name", "birthdate", "_id", "_lastUpdated", "general-practitioner"} <= set(patient)
    # Full-text search is listed because (and as long as) the parser implements it.
    for code in ("_text", "_content"):
        param = registry.get("Patient", code)
        assert param is not None
        assert (code in patient) == facts.search.understood(["Patient"], param)
        if code in patient:
            parser.parse(["Patient"], [(code, "x")], True)
    assert "near" not in _search_params(per_type["Location"])  # special: no parser module
    assert "relationship" not in _search_params(per_type["DocumentReference"])
    search = per_type["Patient"]["paths"]["/fhir/Patient"]["get"]["parameters"]
    refs = [p["$ref"].rsplit("/", 1)[1] for p in search]
    assert [r for r in refs if not r.startswith("search.")] == [
        "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total",
        "_cursor", "_format", "_pretty", "Prefer-handling"]
    # Every result parameter offered is one the parser reads (none it only tolerates).
    assert {r for r in refs if r.startswith("_")} <= RESULT_PARAMS - {
        "_contained", "_containedType"}
    birthdate = patient["birthdate"]
    assert birthdate["x-fhir-search-type"] == "date" and birthdate["explode"] is True
    assert birthdate["schema"] == {"type": "array", "items": {"type": "string"}}


def test_descriptions_are_whole_with_absolute_links(
        facts: ApiFacts, system: dict[str, Any],
        per_type: dict[str, dict[str, Any]]) -> None:
    registry = cast(Registry, facts.search.registry)
    for doc in _all(system, per_type):
        for text in _strings(doc, "description"):
            for target in _LINK.findall(text):
                assert target.startswith("https://hl7.org/fhir/R4/"), (target, text[:80])
            assert "Multiple Resources" not in text
    for name in ("Patient", "Observation", "Encounter"):
        for code, param in _search_params(per_type[name]).items():
            found = registry.get(name, code)
            assert found is not None
            assert param["description"].startswith(describe(found) or code)


# -- interactions: statuses, headers, bodies -------------------------------------------

def _codes(op: dict[str, Any]) -> list[str]:
    return list(op["responses"])


def _refs(op: dict[str, Any]) -> list[str]:
    return [p["$ref"].rsplit("/", 1)[1] for p in op["parameters"]
            if not p["$ref"].rsplit("/", 1)[1].startswith("search.")]


def test_statuses_and_headers(per_type: dict[str, dict[str, Any]]) -> None:
    paths = per_type["Patient"]["paths"]
    item, typ = paths["/fhir/Patient/{id}"], paths["/fhir/Patient"]
    assert _codes(item["get"]) == ["200", "304", "404", "410", "default"]
    assert _refs(item["get"]) == ["id", "_summary", "_elements", "_format", "_pretty",
                                  "If-None-Match", "If-Modified-Since"]
    assert set(item["get"]["responses"]["200"]["headers"]) == {"ETag", "Last-Modified"}
    assert _codes(paths["/fhir/Patient/{id}/_history/{vid}"]["get"]) == \
        ["200", "304", "404", "410", "default"]
    assert _codes(typ["post"]) == ["201", "200", "400", "412", "413", "415", "422", "default"]
    assert _refs(typ["post"]) == ["_format", "_pretty", "If-None-Exist", "Prefer"]
    assert set(typ["post"]["responses"]["201"]["headers"]) == {"Location", "ETag",
                                                               "Last-Modified"}
    for op in (item["put"], typ["put"]):
        assert _codes(op) == ["200", "201", "400", "409", "412", "413", "415", "422",
                              "default"]
        assert _refs(op)[-2:] == ["If-Match", "Prefer"]
    for op in (item["patch"], typ["patch"]):
        assert _codes(op) == ["200", "400", "404", "409", "412", "413", "415", "422",
                              "default"]
        assert set(op["requestBody"]["content"]) == {"application/json-patch+json",
                                                     FHIR_JSON}
    assert _codes(item["delete"]) == ["204", "200", "404", "412", "default"]
    assert _codes(typ["delete"]) == ["204", "200", "400", "412", "default"]
    assert "requestBody" not in item["delete"] and "requestBody" not in item["get"]
    # Conditional interactions take the search parameters as criteria.
    assert any(p["$ref"].endswith("/search.identifier") for p in typ["put"]["parameters"])
    post = paths["/fhir/Patient/_search"]["post"]
    assert _codes(post) == ["200", "400", "404", "415", "default"]
    form = post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert {"name", "birthdate", "_count", "_sort"} <= set(form["properties"])
    assert _refs(post) == ["Prefer-handling"]
    ok = item["get"]["responses"]["200"]["content"][FHIR_JSON]["schema"]
    assert ok == {"$ref": "#/components/schemas/Patient"}
    schema = per_type["Patient"]["components"]["schemas"]["Patient"]
    assert schema["properties"]["resourceType"]["const"] == "Patient"
    headers = per_type["Patient"]["components"]["parameters"]
    assert {p["name"] for p in headers.values() if p["in"] == "header"} == {
        "If-Match", "If-None-Match", "If-Modified-Since", "If-None-Exist", "Prefer"}


def test_system_interactions(system: dict[str, Any]) -> None:
    paths = system["paths"]
    bundle = paths["/fhir"]["post"]
    assert _codes(bundle) == ["200", "400", "404", "409", "412", "413", "415", "422",
                              "default"]
    assert bundle["requestBody"]["content"][FHIR_JSON]["schema"]["$ref"].endswith("/Bundle")
    # metadata answers 400 for an unknown mode
    assert _codes(paths["/fhir/metadata"]["get"]) == ["200", "400", "default"]
    assert _codes(paths["/fhir/_jobs/{job_id}"]["get"]) == ["200", "404", "503", "default"]
    assert _codes(paths["/fhir/{compartment}/{id}/{resource_type}"]["get"]) == \
        ["200", "400", "404", "default"]


def test_reindex_is_an_operation_with_its_parameters(
        system: dict[str, Any], per_type: dict[str, dict[str, Any]]) -> None:
    for op in (system["paths"]["/fhir/$reindex"]["post"],
               per_type["Patient"]["paths"]["/fhir/Patient/$reindex"]["post"]):
        assert _codes(op) == ["202", "404", "503", "default"]
        accepted = op["responses"]["202"]
        assert set(accepted["headers"]) == {"Content-Location"}
        assert accepted["content"][FHIR_JSON]["schema"]["$ref"].endswith("/Parameters")
        assert "requestBody" not in op
        ext = op["x-fhir-operation"]
        assert ext["name"] == "reindex" and ext["definition"] == REINDEX.definition
        assert [p["name"] for p in ext["parameter"]] == [p.name for p in REINDEX.parameters]
        for p in REINDEX.parameters:
            assert f"| `{p.name}` | {p.use} | {p.type} | {p.min}..{p.max} |" in \
                op["description"]


# -- provider, cache, checks -----------------------------------------------------------

def test_type_names_are_checked(facts: ApiFacts) -> None:
    with pytest.raises(ValueError):
        ApiFacts(ROUTES, ("Patient", "../etc"), {}, facts.search, "1")
    with pytest.raises(KeyError):
        build_type(facts, "Nope")
    assert OpenApiDocuments(facts).document("Nope") is None
    assert build_system(facts) == build_system(facts)


def test_type_document_follows_custom_search_parameters() -> None:
    definitions = _definitions()
    registry = Registry.load(data_dir("search"), definitions.resource_types,
                             Extractor(definitions))
    registry.freeze_base()
    docs = OpenApiDocuments(make_facts(registry))
    first = docs.document("Patient")
    assert first is docs.document("Patient")  # cached
    custom = {"resourceType": "SearchParameter", "url": "http://example.org/sp/born",
              "code": "born", "base": ["Patient"], "type": "date",
              "expression": "Patient.birthDate", "description": "See [x](patient.html)"}
    registry.set_custom([(custom, "building")])
    assert docs.document("Patient") == first  # not searchable until reindexed
    registry.set_custom([(custom, "active")])
    params = _search_params(orjson.loads(docs.document("Patient") or b""))
    assert params["born"]["description"].startswith(
        "See [x](https://hl7.org/fhir/R4/patient.html)")


def test_openapi_provider_builds_from_the_context(facts: ApiFacts) -> None:
    search = SimpleNamespace(registry=facts.search.registry, parser=facts.search.parser)
    settings = SimpleNamespace(default_page_size=7, max_page_size=70, auth_mode="off")
    ctx = SimpleNamespace(resource_types=frozenset(facts.resource_types), search=search,
                          compartments=facts.compartments, settings=settings)
    provider = openapi_provider(ROUTES, cast(ServiceContext, ctx), version="9.9")
    assert provider.names == facts.resource_types
    assert provider.system() is provider.system()  # serialised once
    doc = orjson.loads(provider.system())
    assert doc["info"]["version"] == "9.9"
    assert "default 7, at most 70" in doc["components"]["parameters"]["_count"]["description"]
    assert "security" not in doc  # AUTH_MODE=off: nothing to authorize


def test_security_offers_the_authorization_code_flow_and_a_pasted_token(
        system: dict[str, Any], per_type: dict[str, dict[str, Any]]) -> None:
    for doc in (system, per_type["Patient"]):
        schemes = doc["components"]["securitySchemes"]
        flow = schemes["smart"]["flows"]["authorizationCode"]
        assert (flow["authorizationUrl"], flow["tokenUrl"]) == ("/auth/authorize",
                                                                "/auth/token")
        assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
        assert doc["security"] == [{"smart": []}, {"bearer": []}]
    assert system["paths"]["/fhir/metadata"]["get"]["security"] == []
    assert "security" not in system["paths"]["/fhir/{resource_type}"]["get"]
