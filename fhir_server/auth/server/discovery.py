"""The authorization server's metadata: OpenID Connect discovery (RFC 8414 shape).
SMART's ``/fhir/.well-known/smart-configuration`` is ``fhir_server.auth.discovery``."""

from __future__ import annotations

from typing import Any

from fhir_server.auth.discovery import SCOPES
from fhir_server.auth.tokens import issuer_for


def openid_configuration(fhir_base: str) -> dict[str, Any]:
    """OpenID Connect discovery (``/.well-known/openid-configuration``)."""
    issuer = issuer_for(fhir_base)
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth/authorize",
        "token_endpoint": f"{issuer}/auth/token",
        "jwks_uri": f"{issuer}/auth/jwks",
        "registration_endpoint": f"{issuer}/auth/register",
        "introspection_endpoint": f"{issuer}/auth/introspect",
        "revocation_endpoint": f"{issuer}/auth/revoke",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token",
                                  "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                  "client_secret_post", "private_key_jwt",
                                                  "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
                             "fhirUser", "preferred_username"],
    }
