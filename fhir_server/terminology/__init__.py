"""Terminology: the CodeSystems and ValueSets the server knows, the one value-set
expander (validation's required bindings, search's ``:in``/``:not-in``/``:above``/
``:below``, and the ``$expand``/``$validate-code``/``$lookup``/``$subsumes`` operations)."""

from fhir_server.terminology.codesystems import Catalog, load_catalog
from fhir_server.terminology.expand import CannotExpand, Code, Expander, Terminology, expand_packed
from fhir_server.terminology.operations import TerminologyService

__all__ = [
           "CannotExpand",
           "Catalog",
           "Code",
           "Expander",
           "Terminology",
           "TerminologyService",
           "expand_packed",
           "load_catalog",
]
