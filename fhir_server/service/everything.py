"""``Patient/[id]/$everything`` (R4 OperationDefinition Patient-everything): the patient,
every resource of its compartment, and the resources those refer to (Practitioner,
Organization, Location, Medication, ...), in pages.

The pages walk three searches one after the other: the patient itself; the compartment's
types that have a care date (their ``date`` parameter, which ``start``/``end`` bound);
the compartment's other types. A page's cursor names the search and the position in it,
so paging is keyset-based like every other search. Referenced resources come with the
page that refers to them; only types outside the compartment are added that way, so
another patient's data never comes in by reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from fhir_server.errors import BadRequest, NotFound
from fhir_server.search.request import AnyClause, Clause, HasClause, MultiType, SearchRequest
from fhir_server.service import compartment as compartments
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import SearchRow
from fhir_server.service.search import page_size

#: the search parameter that holds a resource's care date (``start``/``end``)
CARE_DATE = "date"
_CURSOR_SEPARATOR = "~"
#: compartment types returned only when ``_type`` names them
UNLESS_NAMED = frozenset({"AuditEvent"})


@dataclass(frozen=True)
class EverythingQuery:
    """The operation's input parameters."""

    patient_id: str
    start: str | None = None
    end: str | None = None
    since: datetime | None = None
    types: tuple[str, ...] = ()
    count: int | None = None
    cursor: str | None = None


@dataclass
class EverythingPage:
    """One page: the compartment's resources, what they refer to, the next position."""

    matches: list[SearchRow]
    includes: list[SearchRow] = field(default_factory=list)
    next_cursor: str | None = None
    count: int = 0
    warnings: list[str] = field(default_factory=list)


def _clause(ctx: ServiceContext, types: Sequence[str], name: str, value: str) -> AnyClause:
    """``name=value`` over ``types``: one clause per type, any may match."""
    parser, pc = ctx.search.parser, ctx.parse_context()
    per_type = [parser.parse([t], [(name, value)], True, pc).clauses[0] for t in types]
    if len(per_type) == 1:
        return per_type[0]
    singles = [c for c in per_type if isinstance(c, Clause | HasClause)]  # one type each
    return MultiType(name, tuple(singles))


def searches(ctx: ServiceContext, query: EverythingQuery) -> list[SearchRequest]:
    """The three searches a $everything walks, without the empty ones."""
    owner = compartments.compartment(ctx, "Patient", query.patient_id)
    wanted = set(query.types)
    for rtype in wanted:
        ctx.check_type(rtype)
    # The audit trail is about the record, not part of it (as wildcard scopes never
    # reach it): AuditEvents come only when _type names them.
    members = [t for t in compartments.member_types(ctx, "Patient") if t != "Patient"
               and (t in wanted if wanted else t not in UNLESS_NAMED)]
    registry = ctx.search.registry
    dated = [t for t in members if registry.get(t, CARE_DATE) is not None]
    undated = [t for t in members if t not in dated]
    out: list[SearchRequest] = []
    if not wanted or "Patient" in wanted:
        out.append(SearchRequest(("Patient",), [_clause(ctx, ["Patient"], "_id",
                                                        query.patient_id)]))
    if dated:
        clauses = [_clause(ctx, dated, CARE_DATE, f"ge{query.start}")] if query.start else []
        if query.end:
            clauses.append(_clause(ctx, dated, CARE_DATE, f"le{query.end}"))
        out.append(SearchRequest(tuple(dated), clauses, compartment=owner))
    if undated:
        out.append(SearchRequest(tuple(undated), [], compartment=owner))
    if query.since:
        for request in out:
            request.clauses.append(_clause(ctx, request.resource_types, "_lastUpdated",
                                           f"ge{query.since.isoformat()}"))
    return out


def _position(cursor: str | None, searches: int) -> tuple[int, str | None]:
    if not cursor:
        return 0, None
    head, _, inner = cursor.partition(_CURSOR_SEPARATOR)
    if not (head.isascii() and head.isdigit()) or int(head) >= searches:
        raise BadRequest("_cursor is not one of this $everything's pages")
    return int(head), inner or None


async def run(ctx: ServiceContext, query: EverythingQuery) -> EverythingPage:
    """One page of the patient's record (NotFound when the caller cannot see it)."""
    found = await ctx.repository.read("Patient", query.patient_id)
    if found is None or found.deleted:
        raise NotFound(f"Patient/{query.patient_id} is not known")
    walk = searches(ctx, query)
    shell = SearchRequest(("Patient",), count=query.count)
    count = page_size(ctx, shell)
    index, inner = _position(query.cursor, len(walk))
    page = EverythingPage([], count=count)
    while index < len(walk) and len(page.matches) < count:
        request = walk[index]
        request.cursor = inner
        result = await ctx.repository.search(request, count - len(page.matches))
        page.matches += result.rows
        if result.next_cursor is not None:
            inner = result.next_cursor
            break
        index, inner = index + 1, None
    if index < len(walk):
        page.next_cursor = f"{index}{_CURSOR_SEPARATOR}{inner or ''}"
    await _referenced(ctx, query, page)
    return page


async def _referenced(ctx: ServiceContext, query: EverythingQuery,
                      page: EverythingPage) -> None:
    """Add the resources outside the compartment that the page's matches refer to."""
    members = set(compartments.member_types(ctx, "Patient"))
    registry = ctx.search.registry
    # One statement for the whole page (index keys are per type); only the parameters
    # that can point outside the compartment (not Observation.encounter, ...).
    params = [p for rtype in {row.version.resource_type for row in page.matches}
              for p in registry.params(rtype).values()
              if p.type == "reference" and (not p.targets or set(p.targets) - members)]
    limit = ctx.settings.max_includes
    seen: set[int] = {row.rid for row in page.matches}
    for row in await ctx.repository.include(page.matches, params, None, limit + len(seen)):
        rtype = row.version.resource_type
        if rtype in members or row.rid in seen or (query.types and rtype not in query.types):
            continue
        if query.since is not None and row.version.last_updated < query.since:
            continue
        if len(page.includes) >= limit:
            page.warnings.append(f"referenced resources were limited to {limit} "
                                 "(MAX_INCLUDES) on this page; ask for a smaller _count")
            return
        seen.add(row.rid)
        page.includes.append(row)
