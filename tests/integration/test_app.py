"""The application's lifespan, in process."""

from __future__ import annotations

import gc

import pytest
from starlette.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.settings import load_settings

#: a host of the default ALLOWED_HOSTS (TestClient's own, ``testserver``, is not one)
LOCAL = "http://localhost"


def test_startup_objects_are_kept_out_of_the_cyclic_collector(migrated_url: str) -> None:
    settings = load_settings({"DATABASE_URL": migrated_url, "AUTH_MODE": "off"},
                             env_file=None)
    gc.unfreeze()
    try:
        with TestClient(create_app(settings), base_url=LOCAL) as client:
            assert gc.get_freeze_count() > 10_000  # definitions, registry, routes
            assert client.get("/fhir/Patient/none-such").status_code == 404
    finally:
        gc.unfreeze()


def test_fhir_needs_a_token_by_default_but_metadata_is_public(migrated_url: str) -> None:
    settings = load_settings({"DATABASE_URL": migrated_url}, env_file=None)
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        refused = client.get("/fhir/Patient/none-such")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="fhir"'
        assert refused.json()["issue"][0]["code"] == "login"
        assert client.get("/fhir/metadata").status_code == 200


def test_cors_is_off_unless_origins_are_configured(migrated_url: str) -> None:
    origin = "https://app.example.org"
    closed = load_settings({"DATABASE_URL": migrated_url}, env_file=None)
    with TestClient(create_app(closed), base_url=LOCAL) as client:
        response = client.get("/fhir/metadata", headers={"Origin": origin})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers
    opened = load_settings({"DATABASE_URL": migrated_url, "CORS_ORIGINS": f" {origin} ,"},
                           env_file=None)
    with TestClient(create_app(opened), base_url=LOCAL) as client:
        preflight = client.options("/fhir/Patient", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization, prefer"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "POST" in preflight.headers["access-control-allow-methods"]
        read = client.get("/fhir/metadata", headers={"Origin": origin})
        assert read.headers["access-control-allow-origin"] == origin
        exposed = {h.strip().lower() for h in
                   read.headers["access-control-expose-headers"].split(",")}
        assert {"etag", "location", "last-modified", "x-request-id"} <= exposed
        other = client.get("/fhir/metadata", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        refused = client.options("/fhir/Patient", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 400


def test_access_log_names_only_verified_clients(migrated_url: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    import base64

    import orjson

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    forged = f"{part({'alg': 'none'})}.{part({'client_id': 'someone-else'})}."
    settings = load_settings({"DATABASE_URL": migrated_url}, env_file=None)
    with TestClient(create_app(settings), base_url=LOCAL) as client, caplog.at_level(
            "INFO", logger="fhir_server.access"):
        answer = client.get("/fhir/Patient", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401
    clients = [getattr(r, "client_id", None) for r in caplog.records
               if r.name == "fhir_server.access"]
    assert clients == ["-"]
