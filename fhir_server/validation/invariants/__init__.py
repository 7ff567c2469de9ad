"""FHIRPath invariants (``ElementDefinition.constraint``) and the JSON rules of R4."""

from fhir_server.validation.invariants.engine import SKIPPED
from fhir_server.validation.invariants.walk import Invariants

__all__ = ["SKIPPED", "Invariants"]
