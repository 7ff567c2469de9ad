"""Bulk Data ``$export`` (https://hl7.org/fhir/uv/bulkdata/ v2): what a kick-off asks
for, the job that answers it, and the searches its worker walks (``export_runner.py``).

A kick-off is checked at once (types, ``_since``, ``_typeFilter``, the caller's read
scopes) and stored as a job of kind ``export``; its params hold the request as asked,
the caller's granted scopes (the worker rebuilds the same AccessScope from them), the
position reached and the files written so far. The same request from the same client
while one is active answers with that job (one active job per scope, as $reindex).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from fhir_server.errors import BadRequest, FhirError, Forbidden, NotFound
from fhir_server.search.base import ParseContext
from fhir_server.search.request import AnyClause, AnyOf, Compartment, SearchRequest
from fhir_server.service import compartment as compartments
from fhir_server.service.access import NOT_IN_WILDCARDS, AccessScope
from fhir_server.service.context import ServiceContext
from fhir_server.service.dates import parse_range
from fhir_server.service.repository import Job, JobStore, Repository

KIND = "export"
#: the output formats a kick-off may name; every one is NDJSON of FHIR JSON
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
NDJSON = "application/fhir+ndjson"
LEVELS = ("system", "patient", "group")
#: kick-off parameters this server understands
PARAMETERS = frozenset({"_outputFormat", "_since", "_type", "_typeFilter"})
_QUERY_START = re.compile(r",(?=\s*[A-Z][A-Za-z]*\?)")


@dataclass(frozen=True)
class ExportRequest:
    """A kick-off as understood: the level, the types, and what narrows them."""

    level: str
    types: tuple[str, ...]
    group_id: str | None = None
    since: str | None = None
    #: resource type -> the queries of its ``_typeFilter``s (a resource matching any)
    filters: dict[str, list[str]] = field(default_factory=dict)
    output_format: str = NDJSON


def wants_async(prefer: str | None) -> None:
    """BadRequest unless ``Prefer`` asks for ``respond-async`` (the IG requires it)."""
    words = {w.strip().lower() for w in (prefer or "").replace(";", ",").split(",")}
    if "respond-async" not in words:
        raise BadRequest("$export needs the header 'Prefer: respond-async'")


def parse_request(ctx: ServiceContext, scope: AccessScope | None, level: str,
                  group_id: str | None, pairs: Sequence[tuple[str, str]]) -> ExportRequest:
    """The kick-off's parameters checked: BadRequest for anything malformed or unknown,
    Forbidden when the caller may read none of the types asked for."""
    values: dict[str, str] = {}
    named: list[str] = []
    filters: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in PARAMETERS:
            raise BadRequest(f"$export has no parameter {name!r} here (supported: "
                             f"{', '.join(sorted(PARAMETERS))})")
        if name == "_type":
            named += [t.strip() for t in value.split(",") if t.strip()]
        elif name == "_typeFilter":
            for one in _filters(value):
                rtype, _, query = one.partition("?")
                filters.setdefault(rtype, []).append(query)
        elif name in values:
            raise BadRequest(f"$export takes {name} once")
        else:
            values[name] = value
    output_format = values.get("_outputFormat", NDJSON)
    if output_format not in OUTPUT_FORMATS:
        raise BadRequest(f"_outputFormat {output_format!r} is not supported (only "
                         "application/fhir+ndjson)")
    if "_since" in values:
        try:
            parse_range(values["_since"])
        except ValueError as exc:
            raise BadRequest(f"_since: {exc}") from None
    for rtype in (*named, *filters):
        if rtype not in ctx.resource_types:
            raise BadRequest(f"unknown resource type {rtype!r}")
    types = tuple(dict.fromkeys(named)) or default_types(ctx, level)
    if level != "system":
        members = set(compartments.member_types(ctx, "Patient")) | {"Patient"}
        if outside := [t for t in types if t not in members]:
            raise BadRequest(f"{', '.join(outside)} cannot be in a Patient compartment: "
                             f"a {level}-level export has none")
    if scope is not None:
        types = _readable(scope, types, bool(named))
    request = ExportRequest(level, types, group_id, values.get("_since"), filters,
                            output_format)
    for rtype in filters:
        search(ctx, request, rtype, ctx.parse_context())  # a malformed filter: 400 now
    return request


def default_types(ctx: ServiceContext, level: str) -> tuple[str, ...]:
    """Every type of the level's population but the audit trail (which only comes when
    ``_type`` names it, as wildcard scopes never reach it)."""
    if level == "system":
        found = sorted(ctx.resource_types)
    else:
        found = sorted({*compartments.member_types(ctx, "Patient"), "Patient"})
    return tuple(t for t in found if t not in NOT_IN_WILDCARDS)


def _readable(scope: AccessScope, types: tuple[str, ...], named: bool) -> tuple[str, ...]:
    """The types the caller may read: all of those named (else Forbidden), or of the
    defaults those its scopes reach (Forbidden when none)."""
    refused = [t for t in types if not scope.may_read_type(t)]
    if named and refused:
        raise Forbidden(f"the token's scopes do not allow reading {', '.join(refused)}")
    kept = tuple(t for t in types if t not in refused)
    if not kept:
        raise Forbidden("the token's scopes do not allow reading any resource type")
    return kept


def search(ctx: ServiceContext, request: ExportRequest, rtype: str, pc: ParseContext,
           owners: tuple[str, ...] | None = None) -> SearchRequest:
    """The search over the current resources of ``rtype`` that the export walks:
    ``_typeFilter`` and ``_since`` as clauses, the level's population as a compartment
    (``owners``: the Group's patients; every patient's when None)."""
    alternatives = [_criteria(ctx, rtype, q, pc) for q in request.filters.get(rtype, ())]
    clauses: list[AnyClause] = (
        list(alternatives[0]) if len(alternatives) == 1
        else [AnyOf(tuple(alternatives))] if alternatives else [])
    if request.since:
        since = parse_range(request.since)[0].isoformat()
        clauses += ctx.search.parser.parse([rtype], [("_lastUpdated", f"ge{since}")],
                                           True, pc).clauses
    population: Compartment | None = None
    if request.level != "system":
        definition = compartments.compartment(ctx, "Patient", "-")
        population = Compartment("Patient", "", definition.params,
                                 owners if owners is not None else ())
    return SearchRequest((rtype,), clauses, compartment=population)


def _filters(value: str) -> list[str]:
    """The queries of one ``_typeFilter`` value: the IG joins several with commas (a
    logical or), so a comma starts a query only where a ``Type?`` follows it; others
    belong to a query's own values (``status=active,completed``)."""
    return [part.strip() for part in _QUERY_START.split(value) if part.strip()]


def _criteria(ctx: ServiceContext, rtype: str, query: str, pc: ParseContext
              ) -> tuple[AnyClause, ...]:
    """The clauses of one ``_typeFilter`` query (criteria only)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    try:
        parsed = ctx.search.parser.parse([rtype], pairs, True, pc)
    except FhirError as exc:
        raise BadRequest(f"_typeFilter {rtype}?{query}: {exc.diagnostics}") from None
    if parsed.sort or parsed.includes or parsed.count is not None or parsed.summary:
        raise BadRequest(f"_typeFilter {rtype}?{query}: only search criteria are allowed")
    if not parsed.clauses:
        raise BadRequest(f"_typeFilter {rtype}?{query}: names no search criterion")
    return tuple(parsed.clauses)


def job_scope(request: ExportRequest, client: str | None, granted: str | None) -> str:
    """What makes two kick-offs the same job: the request, the client and its scopes."""
    key = orjson.dumps({"r": request.__dict__, "c": client, "g": granted},
                       option=orjson.OPT_SORT_KEYS)
    return f"{request.level}/{hashlib.sha256(key).hexdigest()[:32]}"


async def start(ctx: ServiceContext, jobs: JobStore, request: ExportRequest,
                request_url: str, client: str | None, granted: str | None,
                patient: str | None) -> Job:
    """Queue the export (or find the same one active) and return its job."""
    if request.group_id is not None:
        await group_members(ctx.repository, request.group_id)  # NotFound now, not later
    params = {"request": request_url, "level": request.level, "types": list(request.types),
              "group": request.group_id, "since": request.since,
              "filters": request.filters, "format": request.output_format,
              "client": client, "granted": granted, "patient": patient,
              "bases": list(ctx.bases), "position": {"index": 0, "cursor": None},
              "outputs": []}
    started = await jobs.start(KIND, job_scope(request, client, granted), params,
                               list(request.types), [])
    return started.job


def request_of(params: dict[str, Any]) -> ExportRequest:
    """The ExportRequest a job's params hold."""
    # jobs queued before several filters per type held one query per type
    filters = {t: q if isinstance(q, list) else [q]
               for t, q in (params.get("filters") or {}).items()}
    return ExportRequest(str(params["level"]), tuple(params["types"]), params.get("group"),
                         params.get("since"), filters, str(params.get("format") or NDJSON))


async def group_members(repository: Repository, group_id: str) -> tuple[str, ...]:
    """The ids of the Patients a Group's ``member.entity`` refers to (NotFound when the
    caller cannot see the Group)."""
    found = await repository.read("Group", group_id)
    if found is None or found.deleted or found.content is None:
        raise NotFound(f"Group/{group_id} is not known")
    group = orjson.loads(found.content)
    ids: dict[str, None] = {}
    for member in group.get("member") or []:
        reference = (member.get("entity") or {}).get("reference")
        if isinstance(reference, str):
            parts = reference.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == "Patient":
                ids[parts[-1]] = None
    return tuple(ids)


def may_see(job: Job, scope: AccessScope | None, client: str | None) -> bool:
    """Whether a caller may poll, download or cancel an export: the client that asked
    for it, or the admin (anyone when authorization is off)."""
    return scope is None or scope.admin or job.params.get("client") == client


def file_name(resource_type: str, number: int) -> str:
    """The name of an output file in its job's URL space."""
    return f"{resource_type}-{number}.ndjson"


def manifest(job: Job, base_url: str, transaction_time: str, requires_token: bool,
             presigned: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """The completion manifest of a finished export; with ``presigned`` (an object key
    -> its presigned URL) the files are read straight from object storage, no token."""
    outputs = job.params.get("outputs", [])
    urls = [presigned(o["key"]) for o in outputs] if presigned is not None else []
    direct = bool(urls) and all(urls)
    return {
        "transactionTime": transaction_time,
        "request": job.params.get("request"),
        "requiresAccessToken": requires_token and not direct,
        "output": [{"type": o["type"],
                    "url": urls[i] if direct else f"{base_url}/_jobs/{job.id}/{o['name']}",
                    "count": o["count"]} for i, o in enumerate(outputs)],
        "error": [],
    }


def transaction_time(job: Job) -> datetime:
    """The time the export's data is as of: when it was asked for."""
    return job.created_at
