"""Scope matching of clients, the pages' HTML, and the discovery document."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_server.auth.server.discovery import openid_configuration
from fhir_server.auth.server.models import Client, allowed_scopes
from fhir_server.auth.server.pages import (
    consent_page,
    describe_scope,
    error_page,
    login_page,
    picker_page,
)
from fhir_server.auth.server.store import ClientRow


def _client(kind: str, scope: str = "openid patient/*.rs") -> Client:
    return Client(ClientRow("c1", "App", kind, "h" if kind == "confidential" else None,
                            ["https://a.example/cb"], scope, None, None, False,
                            datetime.now(UTC)))


def test_allowed_scopes_cover_by_wildcards_and_permissions() -> None:
    allowed = "openid launch/patient patient/*.rs user/Observation.cruds"
    assert allowed_scopes("openid patient/Observation.r patient/*.rs", allowed) == [
        "openid", "patient/Observation.r", "patient/*.rs"]
    assert allowed_scopes("patient/*.cruds user/Patient.rs system/*.rs fhirUser",
                          allowed) == []
    assert allowed_scopes("user/Observation.read user/Observation.rs", allowed) == [
        "user/Observation.read", "user/Observation.rs"]
    assert allowed_scopes("openid openid", allowed) == ["openid"]
    restricted = "patient/Observation.rs?category=laboratory"
    assert allowed_scopes("patient/Observation.rs", restricted) == []
    assert allowed_scopes(restricted, restricted) == [restricted]


def test_client_kinds() -> None:
    public, conf, backend = _client("public"), _client("confidential"), _client("backend")
    assert public.check_endpoint_auth_method("none", "token")
    assert not public.check_endpoint_auth_method("client_secret_basic", "token")
    assert not public.check_endpoint_auth_method("none", "introspection")
    assert conf.check_endpoint_auth_method("client_secret_basic", "introspection")
    assert backend.check_endpoint_auth_method("private_key_jwt", "token")
    assert backend.check_grant_type("client_credentials")
    assert not backend.check_grant_type("authorization_code")
    assert not backend.check_response_type("code") and public.check_response_type("code")
    assert public.get_default_redirect_uri() == "https://a.example/cb"
    assert public.check_redirect_uri("https://a.example/cb")
    assert not public.check_redirect_uri("https://a.example/cb/")
    assert public.get_allowed_scope("openid patient/Patient.r x") == "openid patient/Patient.r"


def test_pages_escape_and_are_accessible() -> None:
    evil = '<script>alert("x")</script>'
    page = login_page([("state", evil)], "csrf", evil, error=evil)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert '<label for="username">' in page and '<label for="password">' in page
    assert 'name="viewport"' in page and 'role="alert"' in page
    assert "<script" not in consent_page([], "c", "App", "u", ["openid"], "p1")
    picker = picker_page([], "c", "App", [("p1", {"name": [{"given": ["Ada"],
                                                              "family": "L"}],
                                                  "birthDate": "1815-12-10"})], "")
    assert "Ada L (1815-12-10)" in picker and 'for="p0"' in picker
    assert "No patient matches" in picker_page([], "c", "App", [], "zz")
    assert "&lt;b&gt;" in error_page("x", "<b>")


def test_describe_scope() -> None:
    assert describe_scope("patient/Observation.rs") == (
        "Read, search Observation resources about the selected patient")
    assert describe_scope("user/*.cruds").startswith("Create, read, update, delete, search all")
    assert describe_scope("openid").startswith("Know who you are")
    assert describe_scope("weird") == "Other permission"


def test_openid_configuration() -> None:
    meta = openid_configuration("https://ehr.example/fhir")
    assert meta["issuer"] == "https://ehr.example"
    assert meta["token_endpoint"] == "https://ehr.example/auth/token"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
