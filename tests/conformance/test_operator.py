"""Operator endpoints in the runbook's shapes, and the CapabilityStatement."""

from __future__ import annotations

import re

import httpx

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def test_health(root_client: httpx.Client) -> None:
    response = root_client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"status", "timestamp"}
    assert body["status"] == "ok"
    assert STAMP.match(body["timestamp"])


def test_ready(root_client: httpx.Client) -> None:
    response = root_client.get("/api/v1/ready")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("status", "database", "migrations")} == {
        "status": "ready", "database": "connected", "migrations": "up to date"}
    assert STAMP.match(body["timestamp"])


def test_metadata(client: httpx.Client) -> None:
    response = client.get("/metadata")
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert len(resources) == 146
    for name in ("Patient", "Encounter", "Appointment", "DocumentReference"):
        codes = {i["code"] for i in resources[name]["interaction"]}
        assert codes == {"read", "vread", "update", "patch", "delete", "history-instance",
                         "history-type", "create", "search-type"}
        assert resources[name]["conditionalCreate"] is True
        assert resources[name]["conditionalDelete"] == "single"
        names = {p["name"] for p in resources[name]["searchParam"]}
        assert "patient" in names or name == "Patient"
    assert {p["name"] for p in resources["Patient"]["searchParam"]} >= {
        "name", "family", "given", "birthdate", "gender", "identifier", "organization",
        "_text", "_content"}
    bundle_params = {p["name"] for p in resources["Bundle"]["searchParam"]}
    assert "_content" in bundle_params and "_text" not in bundle_params
    rest = statement["rest"][0]
    assert rest["interaction"] == [{"code": c} for c in (
        "transaction", "batch", "history-system", "search-system")]
    assert statement["patchFormat"] == ["application/json-patch+json",
                                        "application/fhir+json"]
    base = str(client.base_url).rstrip("/")
    reindex = {"name": "reindex", "definition": f"{base}/OperationDefinition/reindex"}
    everything = {"name": "everything",
                  "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}
    export = {"name": "export",
              "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}
    validate = {"name": "validate",
                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
    for declared, names in ((rest["operation"], [reindex, export]),
                            (resources["Observation"]["operation"], [reindex, validate]),
                            (resources["Patient"]["operation"], [reindex, validate, export,
                                                                 everything])):
        assert [{k: o[k] for k in ("name", "definition")} for o in declared] == names
        assert declared[0]["documentation"].startswith("Rebuilds the search index")
    definition = client.get("OperationDefinition/reindex").json()
    assert (definition["resourceType"], definition["code"], definition["system"],
            definition["type"], definition["instance"]) == (
        "OperationDefinition", "reindex", True, True, False)
    assert {p["name"] for p in rest["searchParam"]} == {
        "_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"}
    assert "_total=none" in rest["documentation"]


def test_docs_and_openapi(root_client: httpx.Client) -> None:
    docs = root_client.get("/api/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    assert "https://" not in docs.text.split("<body")[0]
    spec = root_client.get("/api/openapi.json").json()
    assert "/fhir/{resource_type}/{id}" in spec["paths"] and "/fhir" in spec["paths"]
    patient = root_client.get("/api/openapi/Patient.json").json()
    assert "/fhir/Patient/{id}" in patient["paths"]
    assert root_client.get("/api/openapi/DocumentReference.json").status_code == 200


def test_metadata_is_a_valid_capability_statement(client: httpx.Client) -> None:
    from fhir_server.validation.validator import Validator

    Validator.load(strict=True).validate(client.get("/metadata").json())
