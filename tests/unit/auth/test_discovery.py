"""Discovery: the SMART configuration document and the CapabilityStatement's security."""

from __future__ import annotations

from fhir_server.auth.discovery import rest_security, smart_configuration
from fhir_server.validation import Validator

BASE = "https://fhir.example.org/fhir"


def test_smart_configuration_names_the_built_in_endpoints() -> None:
    config = smart_configuration(BASE)
    assert config["issuer"] == "https://fhir.example.org"
    assert config["authorization_endpoint"] == "https://fhir.example.org/auth/authorize"
    assert config["token_endpoint"] == "https://fhir.example.org/auth/token"
    assert config["jwks_uri"] == "https://fhir.example.org/auth/jwks"
    assert config["code_challenge_methods_supported"] == ["S256"]
    # SMART 2.0 "Conformance": required for the capabilities announced
    for capability in ("launch-ehr", "launch-standalone", "client-public",
                       "client-confidential-asymmetric", "sso-openid-connect",
                       "permission-v2", "permission-patient", "context-standalone-patient"):
        assert capability in config["capabilities"]
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert set(config["grant_types_supported"]) == {"authorization_code",
                                                    "client_credentials", "refresh_token"}


def test_rest_security_is_valid_fhir_and_names_the_oauth_uris() -> None:
    security = rest_security(BASE, cors=True)
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert uris == {
        "authorize": "https://fhir.example.org/auth/authorize",
        "token": "https://fhir.example.org/auth/token",
        "introspect": "https://fhir.example.org/auth/introspect",
        "revoke": "https://fhir.example.org/auth/revoke",
        "register": "https://fhir.example.org/auth/register",
    }
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    statement = {
        "resourceType": "CapabilityStatement", "status": "active", "date": "2026-12-07",
        "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
        "implementation": {"description": "test"},
        "rest": [{"mode": "server", "security": security}],
    }
    Validator.load(strict=True).validate(statement)
