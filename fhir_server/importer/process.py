"""One work item through the API's service code: a Bundle file, a resource, NDJSON lines.

- transaction Bundle: ``bundle.transaction`` (atomic: a failure skips the whole file);
- batch Bundle: ``bundle.batch`` (each entry on its own);
- any other Bundle (collection, searchset, ...), a single resource, an NDJSON line: each
  resource is upserted with ``write.update`` (PUT semantics) under its own id.

Idempotency (a second run stores nothing new): see :func:`prepare_bundle` and
:func:`resource_id`. Every write goes through a ``BufferedRepository`` (see
``session.py``), so what is stored is what the API would store for the same requests.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fhir_server.api import bundle as bundle_api
from fhir_server.api.body import parse_json, parse_json_exact
from fhir_server.api.messages import FhirRequest
from fhir_server.api.routes import ROUTER
from fhir_server.errors import BadRequest, FhirError
from fhir_server.importer.files import ChunkItem, FileItem, WorkItem
from fhir_server.importer.prepare import (
    claim_conditional_creates,
    drop_entries,
    prepare_bundle,
    resolve_conditional_references,
    resource_id,
)
from fhir_server.importer.session import BufferedRepository, BufferedSession, WriteLog
from fhir_server.service import write as write_service
from fhir_server.service.access import SYSTEM
from fhir_server.service.context import ServiceContext
from fhir_server.service.delegating import SessionRepository

#: Statuses after which a failed transaction file is tried once more at the end: lock
#: conflicts and deadlocks (409), a conditional reference to a resource another worker
#: had not stored yet (412), an unavailable database (503).
RETRY_STATUSES = frozenset({409, 412, 503})
_KINDS = {400: "bad request", 404: "not found", 409: "conflict", 410: "gone",
          412: "precondition failed", 413: "too large", 422: "invalid resource",
          503: "database unavailable"}


@dataclass(frozen=True)
class Problem:
    """One reported failure: ``location`` is ``file``, ``file:line`` or ``file: entry[i]``."""

    location: str
    message: str
    kind: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass
class ItemResult:
    """What one work item did: outcomes by (resource type, outcome), problems."""

    item_id: int
    path: str
    resources: int = 0
    #: resources that were not stored because of a problem
    failed: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    retryable: bool = False
    #: tables the item wrote to (see ``WriteLog.tables``)
    tables: set[str] = field(default_factory=set)


def kind_of(exc: FhirError) -> str:
    """A short class of an error for the summary by error."""
    return f"{exc.status} {_KINDS.get(exc.status, exc.code)}"


async def process(ctx: ServiceContext, repo: BufferedRepository, item: WorkItem,
                  base_url: str) -> ItemResult:
    """Run one work item; failures become problems (never raise a FhirError)."""
    result = ItemResult(item.item_id, item.path)
    if isinstance(item, ChunkItem):
        await _chunk(ctx, repo, item, result)
    else:
        await _file(ctx, repo, item, base_url, result)
    return result


def _entries(bundle: dict[str, Any]) -> list[Any]:
    entries = bundle.get("entry")
    return entries if isinstance(entries, list) else []


def _with_log(ctx: ServiceContext, repo: BufferedRepository,
              log: WriteLog) -> tuple[ServiceContext, BufferedRepository]:
    own = repo.with_log(log)
    return replace(ctx, repository=own), own


async def _file(ctx: ServiceContext, repo: BufferedRepository, item: FileItem, base_url: str,
                result: ItemResult) -> None:
    path = item.path
    try:
        raw = await asyncio.to_thread(Path(path).read_bytes)
    except OSError as exc:
        result.failed = 1
        result.problems.append(Problem(path, f"cannot read: {exc.strerror or exc}",
                                       "unreadable file"))
        return
    try:
        value = parse_json_exact(raw, ctx.settings.max_json_depth)
    except BadRequest as exc:
        result.resources = result.failed = 1
        result.problems.append(Problem(path, exc.diagnostics, "invalid JSON"))
        return
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        result.resources = result.failed = 1
        result.problems.append(Problem(path, "not a FHIR resource (no resourceType)",
                                       "bad request"))
        return
    kind = value.get("type")
    if value["resourceType"] == "Bundle" and kind in ("transaction", "batch"):
        await _bundle(ctx, repo, item, value, base_url, result)
    elif value["resourceType"] == "Bundle":
        records: list[tuple[str, Any, str | None]] = []
        entries = _entries(value)
        for index, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
            if index in item.superseded:
                _superseded(resource, result)
                continue
            records.append((f"{path}: entry[{index}]", resource,
                            full_url if isinstance(full_url, str) else None))
        await _upsert(ctx, repo, [(loc, res, write_service.dumps(res) if res else "", url)
                                  for loc, res, url in records], result)
    elif 0 in item.superseded:
        _superseded(value, result)
    else:
        # A single resource: parsed and stored as the API's PUT would (text as sent,
        # floats where the API has floats: index rows of decimals depend on it).
        body = parse_json(raw, ctx.settings.max_json_depth)
        await _upsert(ctx, repo, [(path, body, raw.decode("utf-8-sig"), None)], result)


def _superseded(resource: Any, result: ItemResult) -> None:
    """A copy left out because a later one is written (``duplicates.py``)."""
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    result.resources += 1
    result.counts[(str(rtype or "?"), "superseded")] += 1


async def _chunk(ctx: ServiceContext, repo: BufferedRepository, item: ChunkItem,
                 result: ItemResult) -> None:
    records: list[tuple[str, Any, str, str | None]] = []
    for number, line in item.lines:
        if not line.strip():
            continue
        if number in item.superseded:
            try:
                _superseded(parse_json(line, ctx.settings.max_json_depth), result)
            except BadRequest:
                _superseded(None, result)
            continue
        location = f"{item.path}:{number}"
        try:
            body = parse_json(line, ctx.settings.max_json_depth)
        except BadRequest as exc:
            result.resources += 1
            result.failed += 1
            message = exc.diagnostics.replace("the request body", "the line")
            result.problems.append(Problem(location, message, "invalid JSON"))
            continue
        records.append((location, body, line.decode("utf-8-sig"), None))
    await _upsert(ctx, repo, records, result)


async def _upsert_one(ctx: ServiceContext, session: BufferedSession, body: Any, text: str,
                      full_url: str | None) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise BadRequest("not a FHIR resource (no resourceType)")
    rid = resource_id(body, full_url)
    body["id"] = rid
    await write_service.update(ctx.with_repository(SessionRepository(session)),
                               body["resourceType"], rid, body, text, None)


async def _upsert(ctx: ServiceContext, repo: BufferedRepository,
                  records: list[tuple[str, Any, str, str | None]], result: ItemResult) -> None:
    """Upsert resources in one transaction; a database failure (rare: validation and
    indexing happen before anything is sent) makes each one run alone to find it."""
    log = WriteLog()
    octx, own = _with_log(ctx, repo, log)
    done: list[tuple[str, Any, str, str | None]] = []
    problems: list[Problem] = []
    try:
        async with own.transaction() as session:
            for record in records:
                location, body, text, full_url = record
                try:
                    await _upsert_one(octx, session, body, text, full_url)
                except FhirError as exc:
                    if session.broken:
                        raise
                    problems.append(Problem(location, exc.diagnostics, kind_of(exc)))
                    continue
                done.append(record)
    except FhirError:
        log.clear()  # rolled back; problems found before stay, now find the bad one
        for location, body, text, full_url in done:
            try:
                async with own.transaction() as session:
                    await _upsert_one(octx, session, body, text, full_url)
            except FhirError as exc:
                problems.append(Problem(location, exc.diagnostics, kind_of(exc)))
    result.resources += len(records)
    result.failed += len(problems)
    result.problems.extend(problems)
    result.tables |= log.tables
    for write in log.writes:
        result.counts[(write.resource_type, write.outcome or "unknown")] += 1


async def _bundle(ctx: ServiceContext, repo: BufferedRepository, item: FileItem,
                  bundle: dict[str, Any], base_url: str, result: ItemResult) -> None:
    """A transaction (all or nothing) or batch Bundle, after :func:`prepare_bundle`,
    :func:`claim_conditional_creates` and without its superseded copies."""
    path = item.path
    prepare_bundle(bundle)
    result.resources = len(_entries(bundle))
    log = WriteLog()
    octx, _ = _with_log(ctx, repo, log)
    octx = octx.for_request(SYSTEM, base_url)
    # What the API does for POST [base] with this Bundle and Prefer: return=minimal.
    request = FhirRequest("POST", "", headers={"prefer": "return=minimal"},
                          base_url=base_url, context=SYSTEM)
    kept: list[int] = list(range(result.resources))
    try:
        unclaimed = await claim_conditional_creates(octx, bundle, item.superseded)
        drop = unclaimed | {i for i in item.superseded
                            if not _conditional_create(_entries(bundle)[i])}
        if drop:
            kept, keys = drop_entries(bundle, drop)
            for rtype, _ in keys:
                result.counts[(rtype, "superseded")] += 1
        await resolve_conditional_references(octx, bundle)
        if bundle["type"] == "transaction":
            response = await bundle_api.transaction(ROUTER, octx, request, bundle)
        else:
            response = await bundle_api.batch(ROUTER, octx, request, bundle)
    except FhirError as exc:
        result.tables |= log.tables  # a batch commits entry by entry
        result.problems.append(Problem(path, _original_entries(exc.diagnostics, kept),
                                       kind_of(exc)))
        result.retryable = exc.status in RETRY_STATUSES
        result.failed = len(kept)
        return
    result.tables |= log.tables
    _count_entries(_entries(bundle), response.get("entry", []), log, path, result, kept)


def _conditional_create(entry: Any) -> bool:
    request = entry.get("request") if isinstance(entry, dict) else None
    return isinstance(request, dict) and bool(request.get("ifNoneExist")) \
        and str(request.get("method", "")).upper() == "POST"


_ENTRY = re.compile(r"\bentry\[(\d+)\]")


def _original_entries(message: str, kept: list[int]) -> str:
    """``entry[i]`` of the Bundle without its superseded copies -> the file's index."""
    def original(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return f"entry[{kept[index] if index < len(kept) else index}]"
    return _ENTRY.sub(original, message)


def _count_entries(entries: list[Any], responses: list[dict[str, Any]], log: WriteLog,
                   path: str, result: ItemResult, kept: list[int]) -> None:
    """Outcome of each entry: its write's real outcome from the log, else ``found``
    (a conditional create that matched) or ``read`` (GET); failed batch entries are
    problems."""
    outcomes: dict[tuple[str, str], str] = {}
    for write in log.writes:
        outcomes[(write.resource_type, write.id)] = write.outcome or "unknown"
    used: set[tuple[str, str]] = set()
    for index, (entry, answer) in enumerate(zip(entries, responses, strict=False)):
        request = entry.get("request", {}) if isinstance(entry, dict) else {}
        method = str(request.get("method", "")).upper()
        url = str(request.get("url", ""))
        resource = entry.get("resource") if isinstance(entry, dict) else None
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        rtype = rtype or url.split("?")[0].split("/")[0] or "?"
        response = answer.get("response", {})
        status = str(response.get("status", ""))
        if status[:1] in ("4", "5"):
            issues = response.get("outcome", {}).get("issue", [{}])
            message = issues[0].get("diagnostics", status) if issues else status
            result.failed += 1
            result.problems.append(Problem(f"{path}: entry[{kept[index]}]",
                                           _original_entries(message, kept),
                                           f"{status.split(' ')[0]} "
                                           f"{_KINDS.get(int(status[:3]), 'error')}"))
            continue
        location = str(response.get("location", "")).split("/_history/")[0]
        if not location and method == "DELETE":
            location = url.split("?")[0]
        ltype, _, lid = location.partition("/")
        key = (ltype, lid)
        if method in ("GET", "HEAD"):
            outcome = "read"
        elif key in outcomes and key not in used:
            used.add(key)
            outcome = outcomes[key]
        elif method == "POST":
            outcome = "found"
        else:
            outcome = "absent" if method == "DELETE" else "unknown"
        result.counts[(rtype, outcome)] += 1
