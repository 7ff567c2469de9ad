"""What every interaction needs, built once in the app's lifespan and handed to services."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from fhir_server.errors import BadRequest, NotFound
from fhir_server.search.base import SearchContext
from fhir_server.search.compile import Compiler
from fhir_server.search.index import IndexBuilder
from fhir_server.search.parse import Parser
from fhir_server.search.registry import Registry
from fhir_server.service.repository import Repository
from fhir_server.settings import Settings

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class ResourceValidator(Protocol):
    """Checks a resource against the R4 definitions (``fhir_server.validation``)."""

    def validate(self, resource: dict[str, Any]) -> None:
        """Raise Unprocessable naming every problem found."""
        ...


@dataclass(frozen=True)
class SearchServices:
    """The search machinery built once at start."""

    registry: Registry
    parser: Parser
    compiler: Compiler
    indexer: IndexBuilder
    #: a template; per request the base URL and clock are filled in
    context: SearchContext


@dataclass(frozen=True)
class ServiceContext:
    """The repository, validator and facts about resource types a service call uses."""

    settings: Settings
    repository: Repository
    validator: ResourceValidator
    resource_types: frozenset[str]
    definitions: Any
    search: SearchServices
    #: compartment type -> resource type -> parameter codes
    compartments: dict[str, dict[str, tuple[str, ...]]]

    def check_type(self, resource_type: str) -> None:
        """NotFound unless ``resource_type`` is a concrete R4 resource type."""
        if resource_type not in self.resource_types:
            raise NotFound(f"unknown resource type {resource_type!r}")


def valid_id(value: str) -> bool:
    """Whether ``value`` is a FHIR logical id: ``[A-Za-z0-9\\-.]{1,64}``."""
    return _ID.fullmatch(value) is not None


def check_id_for_write(value: str) -> None:
    """BadRequest unless ``value`` is a valid logical id (client-chosen ids on PUT)."""
    if not valid_id(value):
        raise BadRequest(f"{value!r} is not a valid id: 1-64 of A-Z a-z 0-9 - .")
