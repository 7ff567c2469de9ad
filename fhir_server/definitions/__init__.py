"""Facts from the FHIR R4 StructureDefinitions: types, elements, cardinalities, bindings."""

from fhir_server.definitions.definitions import ALWAYS_KEPT, Definitions
from fhir_server.definitions.model import ElementInfo

__all__ = ["ALWAYS_KEPT", "Definitions", "ElementInfo"]
