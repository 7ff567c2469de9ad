"""SMART on FHIR authorization: tokens, scopes, the built-in authorization server."""
