"""batch and transaction (http://hl7.org/fhir/R4/http.html#transaction): ``POST /fhir``.

Every entry is dispatched through the router to the handler HTTP uses, so it gets the
same answer. A transaction runs in one database transaction: identities are resolved
first (ids for POSTs, ``ifNoneExist``, conditional updates), every fullUrl is rewritten
in every reference, then entries run in the specification's order (DELETE, POST,
PUT/PATCH, GET/HEAD) and any failure rolls everything back. A batch answers every entry
on its own, each in its own database transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fhir_server.api.body import parse_body
from fhir_server.api.bundle_entries import (
    AnswerSize,
    Entry,
    named,
    read_entries,
    response_entry,
)
from fhir_server.api.messages import FhirRequest, FhirResponse, error_response
from fhir_server.api.router import Router
from fhir_server.errors import BadRequest, FhirError, PayloadTooLarge, PreconditionFailed
from fhir_server.observability import note_bundle_type
from fhir_server.service import write as write_service
from fhir_server.service.bundle_plan import (
    ORDER,
    is_conditional,
    reference_holders,
    replace_references,
    rewrite_references,
)
from fhir_server.service.context import ServiceContext
from fhir_server.service.delegating import SessionRepository
from fhir_server.service.repository import Session

_LOCAL_ONLY = ("urn:uuid:", "urn:oid:")
#: Bodies from this size, and Bundles from this many entries, are parsed and read in a
#: worker thread: tens of milliseconds of pure Python work that would otherwise hold
#: the event loop, and every other request of the worker (health checks too), as long.
#: The interpreter hands the loop its turn every few milliseconds meanwhile.
THREAD_BYTES = 256 * 1024
THREAD_ENTRIES = 500


async def process_bundle(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """A batch or transaction Bundle: 200 with the response Bundle."""
    if request.resource is not None:
        bundle = request.resource
    else:
        body = request.body or b""
        depth = ctx.settings.max_json_depth
        kind = request.header("content-type")
        bundle = (await asyncio.to_thread(parse_body, body, kind, depth, True)
                  if len(body) >= THREAD_BYTES else parse_body(body, kind, depth, True))
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base takes a batch or transaction Bundle")
    raw_entries = bundle.get("entry")
    limit = ctx.settings.max_bundle_entries
    if isinstance(raw_entries, list) and len(raw_entries) > limit:
        raise PayloadTooLarge(f"the Bundle has {len(raw_entries)} entries; at most {limit} "
                              "are accepted", code="too-long")
    kind = bundle.get("type")
    note_bundle_type(kind)
    assert request.router is not None
    if kind == "transaction":
        return FhirResponse(200, await transaction(request.router, ctx, request, bundle))
    if kind == "batch":
        return FhirResponse(200, await batch(request.router, ctx, request, bundle))
    raise BadRequest(f"Bundle.type must be batch or transaction, not {kind!r}")


async def transaction(router: Router, ctx: ServiceContext, request: FhirRequest,
                      bundle: dict[str, Any]) -> dict[str, Any]:
    """Run a transaction Bundle atomically; a failing entry raises, naming the entry."""
    entries = [e for e in await _read(bundle, ctx, router, lenient=False)
               if isinstance(e, Entry)]
    _check_searches(entries, ctx.settings.max_bundle_searches)
    _check_full_urls(entries)
    answers: dict[int, dict[str, Any]] = {}
    size = AnswerSize(ctx.settings.max_response_bytes)
    async with ctx.repository.transaction() as session:
        inner = ctx.with_repository(SessionRepository(session))
        mapping = await _identities(router, inner, session, entries)
        _check_overlap(entries)
        known: dict[str, str] = {}
        conditional = {e.index: _rewrite(e, mapping) for e in entries}
        for entry in sorted(entries, key=lambda e: (ORDER[e.method], e.index)):
            try:
                await _resolve_conditional(inner, session, entry, conditional[entry.index],
                                           known)
                answer = await _run(router, inner, request, entry)
            except FhirError as exc:
                raise named(entry, exc) from None
            answers[entry.index] = size.count(response_entry(answer, entry.method,
                                                             ctx.base_url))
            if size.passed:
                raise size.refusal("nothing was stored")
    return {"resourceType": "Bundle", "type": "transaction-response",
            "entry": [answers[e.index] for e in entries]}


async def batch(router: Router, ctx: ServiceContext, request: FhirRequest,
                bundle: dict[str, Any]) -> dict[str, Any]:
    """Run a batch Bundle: each entry on its own; failures become error entries."""
    entries = await _read(bundle, ctx, router, lenient=True)
    _check_searches([e for e in entries if isinstance(e, Entry)],
                    ctx.settings.max_bundle_searches)
    full_urls = {e.full_url for e in entries if isinstance(e, Entry) and e.full_url}
    out: list[dict[str, Any]] = []
    size = AnswerSize(ctx.settings.max_response_bytes)
    for entry in entries:
        if isinstance(entry, FhirError):
            out.append(response_entry(error_response(entry), "", ctx.base_url))
            continue
        if size.passed:  # not run: its answer would not fit
            refused = named(entry, size.refusal("this entry was not run"))
            out.append(response_entry(error_response(refused), entry.method, ctx.base_url))
            continue
        try:
            _check_batch_references(entry, full_urls)
            async with ctx.repository.transaction() as session:
                inner = ctx.with_repository(SessionRepository(session))
                refs = rewrite_references(entry.resource, {}) if entry.writes else []
                await _resolve_conditional(inner, session, entry, refs, {})
                answer = await _run(router, inner, request, entry)
        except FhirError as exc:  # raised inside: nothing of the entry is committed
            answer = error_response(named(entry, exc))
        out.append(size.count(response_entry(answer, entry.method, ctx.base_url)))
    return {"resourceType": "Bundle", "type": "batch-response", "entry": out}


async def _run(router: Router, ctx: ServiceContext, outer: FhirRequest,
               entry: Entry) -> FhirResponse:
    """One entry through its route's handler."""
    assert entry.route is not None
    assigned = entry.target_id if entry.route.interaction == "create" else None
    return await router.handle(entry.route, dict(entry.params),
                               entry.request(outer, assigned), ctx)


async def _read(bundle: dict[str, Any], ctx: ServiceContext, router: Router,
                lenient: bool) -> list[Entry | FhirError]:
    """The Bundle's entries, read in a worker thread when there are many."""
    entries = bundle.get("entry")
    if isinstance(entries, list) and len(entries) >= THREAD_ENTRIES:
        return await asyncio.to_thread(read_entries, bundle, ctx.bases, router,
                                       lenient=lenient)
    return read_entries(bundle, ctx.bases, router, lenient=lenient)


def _check_searches(entries: list[Entry], limit: int) -> None:
    """413 ``too-costly`` before anything runs when more than ``limit`` entries search
    (or read a history): each may answer a whole page."""
    searches = sum(1 for e in entries if e.searches)
    if searches > limit:
        raise PayloadTooLarge(f"the Bundle has {searches} searches (or history reads); at "
                              f"most {limit} are accepted in one batch or transaction",
                              code="too-costly")


def _check_full_urls(entries: list[Entry]) -> None:
    """bdl-7: a fullUrl names one entry."""
    seen: dict[str, Entry] = {}
    for entry in entries:
        if entry.full_url is None:
            continue
        first = seen.setdefault(entry.full_url, entry)
        if first is not entry:
            raise BadRequest(f"{entry.label} has the fullUrl {entry.full_url!r} of "
                             f"{first.label}; each entry needs its own (bdl-7)")


def _check_batch_references(entry: Entry, full_urls: set[str]) -> None:
    """A batch's entries must not depend on each other (http.html#brules)."""
    if not entry.writes:
        return
    for _, reference in reference_holders(entry.resource):
        if reference in full_urls:
            raise BadRequest(f"the reference {reference!r} points to another entry; the "
                             "entries of a batch must not depend on each other (use a "
                             "transaction)")


async def _identities(router: Router, ctx: ServiceContext, session: Session,
                      entries: list[Entry]) -> dict[str, str]:
    """Ids for POSTs, ifNoneExist matches and conditional-update targets; fullUrls to
    ``Type/id``."""
    mapping: dict[str, str] = {}
    # A later POST with the same ifNoneExist as an earlier one of this Bundle is the
    # same resource (it would have matched the first had they run one after another).
    created_here: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        if not entry.writes:
            continue
        interaction = entry.route.interaction if entry.route else ""
        condition = entry.headers.get("if-none-exist")
        try:
            if interaction == "create" and condition:
                key = (entry.resource_type, condition)
                if key in created_here:
                    entry.target_id, entry.found = created_here[key].target_id, True
                else:
                    match = await write_service.single_match(
                        ctx, session, entry.resource_type, condition,
                        f"If-None-Exist {condition!r}")
                    if match is not None:
                        entry.target_id, entry.found = match.version.id, True
                    else:
                        created_here[key] = entry
            elif interaction == "conditional-update":
                body_id = entry.resource.get("id") if isinstance(entry.resource, dict) else None
                entry.target_id, _ = await write_service.conditional_target(
                    ctx, session, entry.resource_type, entry.query, body_id)
                # From here on a plain update of the target (or update-as-create).
                _retarget(entry, router)
            elif "id" in entry.params:
                entry.target_id = entry.params["id"]
        except FhirError as exc:
            raise named(entry, exc) from None
        if interaction == "create" and entry.target_id is None:
            entry.target_id = str(uuid.uuid4())
        if entry.full_url and entry.target_id and entry.method in ("POST", "PUT"):
            mapping[entry.full_url] = f"{entry.resource_type}/{entry.target_id}"
    return mapping


def _retarget(entry: Entry, router: Router) -> None:
    """A resolved conditional update becomes ``PUT Type/target``."""
    assert entry.target_id is not None
    rtype = entry.resource_type
    if isinstance(entry.resource, dict):
        entry.resource["id"] = entry.target_id
    entry.path, entry.query = f"{rtype}/{entry.target_id}", ""
    entry.route, entry.params = router.match("PUT", entry.path)


def _check_overlap(entries: list[Entry]) -> None:
    """Two writes to one resource in one transaction are an error (http.html#trules)."""
    seen: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        if not entry.writes or entry.target_id is None or entry.found:
            continue
        key = (entry.resource_type, entry.target_id)
        if key in seen:
            raise BadRequest(f"{entry.label} and {seen[key].label} both write "
                             f"{key[0]}/{key[1]}; a transaction may change a resource once")
        seen[key] = entry


def _rewrite(entry: Entry, mapping: dict[str, str]) -> list[str]:
    """Rewrite references to fullUrls of the Bundle; the conditional ones are returned.
    A ``urn:uuid:`` or ``urn:oid:`` reference no entry defines is an error."""
    if not entry.writes or not isinstance(entry.resource, dict):
        return []
    conditional = rewrite_references(entry.resource, mapping)
    for _, reference in reference_holders(entry.resource):
        if reference.startswith(_LOCAL_ONLY):
            raise named(entry, BadRequest(
                f"the reference {reference!r} names no entry of this Bundle"))
    return conditional


async def _resolve_conditional(ctx: ServiceContext, session: Session, entry: Entry,
                               references: list[str], known: dict[str, str]) -> None:
    """Replace ``Type?query`` references by the single match, searched once per Bundle."""
    resolved: dict[str, str] = {}
    for ref in references:
        if not is_conditional(ref):
            continue
        if ref in known:
            resolved[ref] = known[ref]
            continue
        rtype, _, criteria = ref.partition("?")
        found = await write_service.matches(ctx, session, rtype, criteria)
        if len(found) != 1:
            raise PreconditionFailed(
                f"the conditional reference {ref!r} matches {len(found) or 'no'} "
                f"{rtype} resources; it must match exactly one")
        resolved[ref] = known[ref] = f"{rtype}/{found[0].version.id}"
    if resolved:
        replace_references(entry.resource, resolved)
