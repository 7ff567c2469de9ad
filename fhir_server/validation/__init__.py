"""Validation of resources against the FHIR R4 definitions."""

from fhir_server.validation.validator import Validator

__all__ = ["Validator"]
