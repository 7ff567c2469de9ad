"""What SMART clients discover: ``.well-known/smart-configuration`` (SMART App Launch 2.0
"Conformance") and the CapabilityStatement's ``rest.security``, both naming the
built-in authorization server's endpoints for a FHIR base."""

from __future__ import annotations

from typing import Any

from fhir_server.auth.tokens import issuer_for

#: what the built-in server does (SMART 2.0 capability codes)
CAPABILITIES = (
    "launch-ehr", "launch-standalone", "authorize-post",
    "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
    "context-banner",
    "permission-offline", "permission-online", "permission-patient", "permission-user",
    "permission-v1", "permission-v2",
)
SCOPES = (
    "openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
    "offline_access", "online_access",
    "patient/*.rs", "patient/*.cruds", "user/*.rs", "user/*.cruds", "system/*.rs",
    "system/*.cruds", "patient/*.read", "patient/*.write", "user/*.read", "user/*.write",
    "system/*.read", "system/*.write", "system/*.*",
)
_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def endpoints(base: str) -> dict[str, str]:
    """The authorization server's endpoints for the FHIR base ``base``."""
    issuer = issuer_for(base)
    return {
        "issuer": issuer,
        "authorize": f"{issuer}/auth/authorize",
        "token": f"{issuer}/auth/token",
        "introspect": f"{issuer}/auth/introspect",
        "revoke": f"{issuer}/auth/revoke",
        "register": f"{issuer}/auth/register",
        "jwks": f"{issuer}/auth/jwks",
    }


def smart_configuration(base: str) -> dict[str, Any]:
    """The ``.well-known/smart-configuration`` document."""
    urls = endpoints(base)
    return {
        "issuer": urls["issuer"],
        "jwks_uri": urls["jwks"],
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "introspection_endpoint": urls["introspect"],
        "revocation_endpoint": urls["revoke"],
        "registration_endpoint": urls["register"],
        "grant_types_supported": ["authorization_code", "client_credentials",
                                  "refresh_token"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic",
                                                  "client_secret_post", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": list(SCOPES),
        "code_challenge_methods_supported": ["S256"],
        "capabilities": list(CAPABILITIES),
    }


def rest_security(base: str, cors: bool) -> dict[str, Any]:
    """``CapabilityStatement.rest.security`` for SMART on FHIR."""
    urls = endpoints(base)
    return {
        "extension": [{"url": _OAUTH_URIS, "extension": [
            {"url": name, "valueUri": urls[name]}
            for name in ("authorize", "token", "introspect", "revoke", "register")]}],
        "cors": cors,
        "service": [{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}],
            "text": "OAuth2 using the SMART App Launch profile (smart-app-launch): "
                    "discovery at .well-known/smart-configuration"}],
        "description": "Bearer tokens of the SMART App Launch 2.0 / Backend Services "
                       "authorization server at " + urls["issuer"] + "/auth (scopes v1 and "
                       "v2, enforced on every interaction).",
    }
