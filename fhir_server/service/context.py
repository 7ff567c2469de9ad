"""What every interaction needs: built once at start, then narrowed per request.

The lifespan builds one :class:`ServiceContext` (settings, definitions, validator, search
machinery, the repository); each request gets its own copy via :meth:`for_request`,
whose repository is bound to the caller's access scope, so every service function that
reaches storage through ``ctx.repository`` sees only what that caller may see.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

from fhir_server.blobs.store import BlobStore
from fhir_server.errors import BadRequest, Issue, NotFound
from fhir_server.search.base import ParseContext
from fhir_server.search.index import IndexBuilder
from fhir_server.search.parse import Parser
from fhir_server.search.registry import Registry
from fhir_server.service.access import RequestContext
from fhir_server.service.repository import JobStore, Repository
from fhir_server.settings import Settings
from fhir_server.terminology import TerminologyService

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DOT_SEGMENTS = frozenset({".", ".."})


class ResourceValidator(Protocol):
    """Checks a resource against the R4 definitions (``fhir_server.validation``): one
    pipeline, which writes run through ``validate`` and ``$validate`` through ``issues``."""

    def validate(self, resource: dict[str, Any]) -> list[Issue]:
        """Raise Unprocessable naming every issue when one is an error; else the
        issues (warnings) found."""
        ...

    def issues(self, resource: Any, profiles: Sequence[str] = ()) -> list[Issue]:
        """Every issue of any severity, ``profiles`` (canonical URLs) checked too."""
        ...

    @property
    def profiles(self) -> Mapping[str, Any]:
        """The known profiles by canonical URL (each with its ``type``)."""
        ...


@dataclass(frozen=True)
class SearchServices:
    """The search machinery built once at start."""

    registry: Registry
    parser: Parser
    indexer: IndexBuilder
    #: ``:in``/``:not-in``: value set URL -> (system, code) pairs, or None if unknown
    expand_valueset: Any = None
    #: ``:above``/``:below``: (system, code, modifier) -> codes, or None (see ParseContext)
    subsumption: Any = None


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
    jobs: JobStore | None = None
    #: where Binary content lives (None: nowhere, content stays inline)
    blobs: BlobStore | None = None
    #: the terminology operations ($expand, $validate-code, $lookup, $subsumes)
    terminology: TerminologyService | None = None
    #: the base of links in answers: ``FHIR_BASE_URL``, else the request's own base
    base_url: str = ""
    #: the base the request itself was sent to (references to it are local too)
    request_base: str = ""

    #: for_request's copies by request base and scope (a read's hot path: no copy made;
    #: a token's scope is one object for the token's lifetime), with the scope kept so
    #: that its id is not reused while the entry lives
    #: (init=False: every copy, replace() included, starts with its own)
    _derived: dict[tuple[str, int], tuple[object, ServiceContext]] = field(
        default_factory=dict, init=False, compare=False, repr=False)

    def for_request(self, request: RequestContext, request_base: str) -> ServiceContext:
        """This context for one request: its bases, and a repository bound to the
        access scope of its caller."""
        key = (request_base, id(request.scope))
        known = self._derived.get(key)
        if known is not None and known[0] is request.scope:
            return known[1]
        repository = (self.repository if request.scope is None
                      else self.repository.scoped(request.scope))
        own = request_base.rstrip("/")
        derived = replace(self, repository=repository, request_base=own,
                          base_url=self.settings.fhir_base_url.rstrip("/") or own)
        if len(self._derived) >= 4096:  # Host headers vary little, tokens more
            self._derived.clear()
        self._derived[key] = (request.scope, derived)
        return derived

    def with_repository(self, repository: Repository) -> ServiceContext:
        """This context on another repository (a transaction's session, a buffer)."""
        return replace(self, repository=repository)

    @cached_property
    def bases(self) -> tuple[str, ...]:
        """The base URLs references to which are local: ``FHIR_BASE_URL``, the aliases
        of ``FHIR_BASE_ALIASES`` and the base this request was sent to (computed once
        per context: contexts are reused per request base and scope)."""
        return tuple(b for b in dict.fromkeys(
            (self.base_url, *self.settings.local_bases, self.request_base)) if b)

    def parse_context(self) -> ParseContext:
        """What parsing this request's search values needs."""
        return ParseContext(self.bases, datetime.now(UTC), self.search.expand_valueset,
                            subsumption=self.search.subsumption)

    def check_type(self, resource_type: str) -> None:
        """NotFound unless ``resource_type`` is a concrete R4 resource type."""
        if resource_type not in self.resource_types:
            raise NotFound(f"unknown resource type {resource_type!r}")


def valid_id(value: str) -> bool:
    """Whether ``value`` is a FHIR logical id: ``[A-Za-z0-9\\-.]{1,64}``, but not ``.`` or
    ``..``: as a URL's path segment either is removed by normalization, so
    ``Patient/..`` would name the type or the base, not a resource."""
    return _ID.fullmatch(value) is not None and value not in _DOT_SEGMENTS


def check_id_for_write(value: str) -> None:
    """BadRequest unless ``value`` is a valid logical id (client-chosen ids on PUT)."""
    if not valid_id(value):
        raise BadRequest(f"{value!r} is not a valid id: 1-64 of A-Z a-z 0-9 - . (and not "
                         "'.' or '..')")
