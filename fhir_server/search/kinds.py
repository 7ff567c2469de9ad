"""The parameter type of each search parameter type code."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fhir_server.search.base import ParamType
from fhir_server.search.composite import COMPOSITE
from fhir_server.search.date import DATE
from fhir_server.search.number import NUMBER
from fhir_server.search.quantity import QUANTITY
from fhir_server.search.reference import REFERENCE
from fhir_server.search.string import STRING
from fhir_server.search.token import TOKEN
from fhir_server.search.uri import URI

#: Parameter type code -> the type that indexes and parses it.
PARAM_TYPES: Mapping[str, ParamType] = MappingProxyType({
    k.name: k for k in (TOKEN, STRING, DATE, NUMBER, QUANTITY, REFERENCE, URI, COMPOSITE)})
