"""The authorization server's metadata: OpenID Connect discovery (RFC 8414 shape).
SMART's ``/fhir/.well-known/smart-configuration`` is ``fhir_server.auth.discovery``."""

from __future__ import annotations

from typing import Any

from fhir_server.auth.discovery import smart_configuration


def openid_configuration(fhir_base: str) -> dict[str, Any]:
    """OpenID Connect discovery (``/.well-known/openid-configuration``): the SMART
    document's endpoints and methods, and what OpenID Connect adds."""
    smart = smart_configuration(fhir_base)
    smart.pop("capabilities")
    return {
        **smart,
        "response_modes_supported": ["query"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
                             "fhirUser", "preferred_username"],
    }
