"""The OpenAPI 3.1 documents of the FHIR API, generated from the route table.

``/api/openapi.json`` is the system document (every route, ``{resource_type}`` paths
with an enum of types, the common search parameters); ``/api/openapi/{type}.json`` is one
type's (its concrete paths and its own search parameters), built when first asked for.
``http.docs`` serves them and the Swagger UI that picks one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from fhir_server.api.openapi.components import FHIR_JSON
from fhir_server.api.openapi.documents import ApiFacts, build_system, build_type
from fhir_server.api.openapi.params import SearchFacts
from fhir_server.api.router import Route
from fhir_server.service.context import ServiceContext

__all__ = ["FHIR_JSON", "ApiFacts", "OpenApiDocuments", "SearchFacts",
           "build_system", "build_type", "facts_from_context", "openapi_provider"]


class OpenApiDocuments:
    """The documents, serialised once each (a type's again when its search parameters
    change, e.g. an API-defined SearchParameter becoming active)."""

    def __init__(self, facts: ApiFacts) -> None:
        self.facts = facts
        self._system: bytes | None = None
        self._types: dict[str, tuple[tuple[Any, ...], bytes]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """The resource types that have a document, in order."""
        return self.facts.resource_types

    def system(self) -> bytes:
        """The system document's JSON."""
        if self._system is None:
            self._system = orjson.dumps(build_system(self.facts))
        return self._system

    def document(self, name: str) -> bytes | None:
        """The JSON of ``name``'s document, or None for a name that is no type here."""
        if name not in self.facts.resource_types:
            return None
        params = self.facts.search.registry.params(name)
        key = tuple((c, p.status, p.type, p.url) for c, p in sorted(params.items()))
        cached = self._types.get(name)
        if cached is None or cached[0] != key:
            cached = self._types[name] = (key, orjson.dumps(build_type(self.facts, name)))
        return cached[1]


def facts_from_context(routes: Sequence[Route], ctx: ServiceContext, *,
                       version: str) -> ApiFacts:
    """The facts of the documents: the table and the context's types and registry."""
    types = tuple(sorted(ctx.resource_types))
    search = SearchFacts(ctx.search.registry, ctx.search.parser, types)
    return ApiFacts(tuple(routes), types, ctx.compartments, search, version,
                    ctx.settings.default_page_size, ctx.settings.max_page_size,
                    auth=ctx.settings.auth_mode == "smart")


def openapi_provider(routes: Sequence[Route], ctx: ServiceContext, *,
                     version: str) -> OpenApiDocuments:
    """The documents of ``routes`` over ``ctx``."""
    return OpenApiDocuments(facts_from_context(routes, ctx, version=version))
