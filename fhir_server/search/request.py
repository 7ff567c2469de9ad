"""A parsed search, in FHIR terms: what the storage boundary takes.

Values are typed by their parameter's type (``search.token.TokenKey``,
``search.date.DateValue`` ...; ``search.text.TextQuery`` for ``_text``/``_content``)
when the query is parsed, so a storage backend only translates them; it never sees
query strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_server.search.registry import SearchParam


@dataclass(frozen=True)
class Criterion:
    """One parameter of one resource type with its OR values, parsed for that parameter.

    ``modifier`` is ``missing`` (one boolean value), a type's own modifier (``not``,
    ``exact``, ``identifier`` ...) or None; a reference's ``:[type]`` is already folded
    into its values.
    """

    param: SearchParam
    modifier: str | None
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Link:
    """One hop of a chain: a reference parameter and the target type(s) it leads to."""

    param: SearchParam
    target_types: tuple[str, ...]


@dataclass(frozen=True)
class Clause:
    """``param[:modifier]=v1,v2`` (OR), possibly reached through a chain of references.

    ``criteria`` holds the final parameter once per resource type it may be on: one for a
    plain parameter, several after a chain into several target types.
    """

    name: str
    criteria: tuple[Criterion, ...]
    chain: tuple[Link, ...] = ()
    #: after a chain: the criteria again, parsed for the rows of contained resources
    #: (``search.hashing.contained_key``), for the hops through a ``#id`` reference
    contained: tuple[Criterion, ...] = ()

    @property
    def param(self) -> SearchParam:
        """The final parameter (on the first type it applies to)."""
        return self.criteria[0].param


@dataclass(frozen=True)
class HasClause:
    """``_has:Type:reference:<inner>``: some ``Type`` referring to the resource matches."""

    name: str
    source_type: str
    reference: SearchParam
    inner: Clause | HasClause


@dataclass(frozen=True)
class MultiType:
    """One parameter in a search over several types: a clause per type (any may match)."""

    name: str
    per_type: tuple[Clause | HasClause, ...]


@dataclass(frozen=True)
class AnyOf:
    """Alternatives, each a conjunction of clauses: a resource matching all clauses of
    any one matches (Bulk Data's several ``_typeFilter`` queries of one type)."""

    alternatives: tuple[tuple[AnyClause, ...], ...]


AnyClause = Clause | HasClause | MultiType | AnyOf


@dataclass(frozen=True)
class Include:
    """``_include``/``_revinclude`` = ``Source:param[:Target]`` or ``*``, maybe iterating."""

    source_type: str
    param_code: str
    target_type: str | None
    iterate: bool
    reverse: bool


@dataclass(frozen=True)
class Sort:
    """One ``_sort`` key: a parameter code (``_id``, ``_lastUpdated`` or one with index
    rows on each searched type) and its direction."""

    code: str
    descending: bool
    #: the parameter on each searched type that has it (empty for _id, _lastUpdated)
    params: tuple[SearchParam, ...] = ()


@dataclass(frozen=True)
class Compartment:
    """A compartment (http://hl7.org/fhir/R4/compartmentdefinition.html): the resources
    that refer to ``owner_type/owner_id`` through one of ``params`` (and the owner)."""

    owner_type: str
    owner_id: str
    #: every (resource type, parameter) linking a resource to the owner
    params: tuple[SearchParam, ...]
    #: Bulk Data export: the union of the compartments of these owners, the owners
    #: included (empty: of every resource of ``owner_type``); ``owner_id`` is then unused
    owners: tuple[str, ...] | None = None

    def member_types(self) -> frozenset[str]:
        """The resource types that can be in the compartment."""
        return frozenset(p.resource_type for p in self.params)


@dataclass
class SearchRequest:
    """A parsed search: what selects resources and how to present them."""

    resource_types: tuple[str, ...]
    clauses: list[AnyClause] = field(default_factory=list)
    sort: list[Sort] = field(default_factory=list)
    count: int | None = None
    includes: list[Include] = field(default_factory=list)
    summary: str | None = None
    elements: list[str] | None = None
    total: str = "none"
    #: the opaque paging position of a next/previous link
    cursor: str | None = None
    #: only resources in this compartment (compartment search)
    compartment: Compartment | None = None
    #: (name, value) pairs that were applied, for the self link
    applied: list[tuple[str, str]] = field(default_factory=list)
    #: names that were ignored, with why
    ignored: list[tuple[str, str]] = field(default_factory=list)
