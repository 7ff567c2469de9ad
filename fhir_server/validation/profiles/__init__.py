"""Validation against profiles: StructureDefinitions that constrain the base types."""

from fhir_server.validation.profiles.loader import ProfileError
from fhir_server.validation.profiles.registry import (
    ConstraintCheck,
    ProfileSet,
    no_constraints,
    parse_required,
)

__all__ = ["ConstraintCheck", "ProfileError", "ProfileSet", "no_constraints",
           "parse_required"]
