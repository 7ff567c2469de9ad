"""batch and transaction (http://hl7.org/fhir/R4/http.html#transaction).

A transaction runs in one database transaction: identities are resolved first
(``ifNoneExist``, conditional updates), ``urn:uuid:``/``urn:oid:`` and other fullUrls
are rewritten in every reference, then entries run in the specification's order
(DELETE, POST, PUT/PATCH, GET) and any failure rolls everything back. A batch answers
every entry on its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

import orjson

from fhir_server.errors import BadRequest, FhirError, Issue, PreconditionFailed
from fhir_server.http.headers import etag, instant, parse_etag, parse_http_date
from fhir_server.service import read as read_service
from fhir_server.service import search as search_service
from fhir_server.service import write as write_service
from fhir_server.service.bundle_plan import (
    ORDER,
    Entry,
    entries,
    replace_references,
    rewrite_references,
)
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import Session, StoredVersion, WriteResult


@dataclass
class EntryResponse:
    """What one entry's ``response`` (and ``resource``) say.

    ``kind`` says when the entry carries a resource: ``write`` as ``Prefer: return``
    asks (the stored version, or an informational ``outcome`` for
    ``return=OperationOutcome``), ``read`` always (a GET's answer: the version or the
    ``resource`` given, a searchset), ``bare`` never (HEAD, 304).
    """

    status: int
    version: StoredVersion | None = None
    resource: Any = None
    outcome: dict[str, Any] | None = None
    kind: Literal["write", "read", "bare"] = "write"

    def to_json(self, prefer: str, base_url: str) -> dict[str, Any]:
        """The response entry of a batch-response/transaction-response Bundle."""
        response: dict[str, Any] = {"status": _status_line(self.status)}
        entry: dict[str, Any] = {}
        v = self.version
        resource = self.resource
        if v is not None:
            if not v.deleted:
                response["location"] = f"{v.resource_type}/{v.id}/_history/{v.version_id}"
            response["etag"] = etag(v.version_id)
            response["lastModified"] = instant(v.last_updated)
            wanted = self.kind == "read" or (self.kind == "write" and prefer == "representation")
            if resource is None and v.content is not None and wanted:
                entry["fullUrl"] = f"{base_url}/{v.resource_type}/{v.id}"
                resource = orjson.Fragment(v.content)
        if resource is not None and self.kind != "bare":
            entry["resource"] = resource
        if self.outcome is not None:
            response["outcome"] = self.outcome
        elif v is not None and self.kind == "write" and prefer == "OperationOutcome":
            what = f"{v.resource_type}/{v.id}"
            text = (f"{what} deleted" if v.deleted else f"{what}: version {v.version_id} "
                    f"at {instant(v.last_updated)}")
            response["outcome"] = {"resourceType": "OperationOutcome", "issue": [
                {"severity": "information", "code": "informational", "diagnostics": text}]}
        entry["response"] = response
        return entry


def _status_line(status: int) -> str:
    """``404 Not Found``: the code and its standard phrase, as Bundle responses carry."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _status(result: WriteResult) -> int:
    return {"created": 201, "found": 200, "updated": 200, "unchanged": 200,
            "deleted": 204, "absent": 204}[result.outcome]


def _fail(entry: Entry, exc: FhirError) -> FhirError:
    """The same error, naming the entry (for the transaction's OperationOutcome)."""
    issues = [Issue(i.code, f"{entry.label}: {i.diagnostics}", i.severity,
                    i.expression or (f"Bundle.entry[{entry.index}]",)) for i in exc.issues]
    failed = FhirError(f"{entry.label}: {exc.diagnostics}", issues, exc.headers,
                       status=exc.status, code=exc.code)
    return failed


async def transaction(ctx: ServiceContext, bundle: dict[str, Any], base_url: str,
                      prefer: str) -> dict[str, Any]:
    """Run a transaction Bundle atomically; a failing entry raises, naming the entry."""
    planned = entries(bundle, base_url)
    results: dict[int, EntryResponse] = {}
    async with ctx.repository.transaction() as session:
        mapping = await _identities(ctx, session, planned, base_url, results)
        _check_overlap(planned)
        known: dict[str, str] = {}
        for entry in planned:
            entry.extras["known_references"] = known
            if isinstance(entry.resource, dict):
                entry.extras["conditional"] = rewrite_references(entry.resource, mapping)
        for entry in sorted(planned, key=lambda e: (ORDER[e.method], e.index)):
            if entry.index in results:
                continue
            if "same_as" in entry.extras:
                first = results[entry.extras["same_as"]]
                results[entry.index] = EntryResponse(200, first.version)
                continue
            try:
                results[entry.index] = await _run(ctx, session, entry, base_url)
            except FhirError as exc:
                raise _fail(entry, exc) from None
    return {"resourceType": "Bundle", "type": "transaction-response",
            "entry": [results[e.index].to_json(prefer, base_url) for e in planned]}


async def batch(ctx: ServiceContext, bundle: dict[str, Any], base_url: str,
                prefer: str) -> dict[str, Any]:
    """Run a batch Bundle: each entry on its own; failures become error entries."""
    out: list[dict[str, Any]] = []
    for entry in entries(bundle, base_url):
        try:
            async with ctx.repository.transaction() as session:
                if entry.method == "POST" and entry.if_none_exist:
                    found = await _conditional_create(ctx, session, entry)
                    if found is not None:
                        out.append(found.to_json(prefer, base_url))
                        continue
                if entry.method == "PUT" and entry.criteria is not None:
                    entry.target_id, _ = await write_service.conditional_target(
                        ctx, session, entry.resource_type, entry.criteria,
                        entry.resource.get("id"))
                if isinstance(entry.resource, dict):
                    entry.extras["conditional"] = rewrite_references(entry.resource, {})
                response = await _run(ctx, session, entry, base_url)
        except FhirError as exc:
            failed = _fail(entry, exc)
            response = EntryResponse(exc.status, outcome=failed.operation_outcome())
        out.append(response.to_json(prefer, base_url))
    return {"resourceType": "Bundle", "type": "batch-response", "entry": out}


async def _conditional_create(ctx: ServiceContext, session: Session,
                              entry: Entry) -> EntryResponse | None:
    """Resolve a POST's ifNoneExist: the response when it matched, else None."""
    assert entry.if_none_exist is not None
    match = await write_service.single_match(ctx, session, entry.resource_type,
                                             entry.if_none_exist,
                                             f"ifNoneExist {entry.if_none_exist!r}")
    if match is None:
        return None
    entry.target_id = match.version.id
    return EntryResponse(200, match.version)


async def _identities(ctx: ServiceContext, session: Session, planned: list[Entry],
                      base_url: str, results: dict[int, EntryResponse]) -> dict[str, str]:
    """Assign ids (POST), resolve ifNoneExist and conditional updates; map fullUrls."""
    mapping: dict[str, str] = {}
    # Conditional creates earlier in this Bundle: a later POST with the same criteria is
    # the same resource (it would have matched the first had they run one after another).
    created_here: dict[tuple[str, str], Entry] = {}
    for entry in planned:
        if entry.method == "POST":
            key = (entry.resource_type, entry.if_none_exist or "")
            if entry.if_none_exist and key in created_here:
                first = created_here[key]
                entry.target_id = first.target_id
                entry.extras["found"] = True
                entry.extras["same_as"] = first.index
            elif entry.if_none_exist:
                try:
                    found = await _conditional_create(ctx, session, entry)
                except FhirError as exc:
                    raise _fail(entry, exc) from None
                if found is not None:
                    results[entry.index] = found
                    entry.extras["found"] = True
                else:
                    created_here[key] = entry
            if entry.target_id is None:
                entry.target_id = str(uuid.uuid4())
        elif entry.method == "PUT" and entry.criteria is not None:
            try:
                body_id = entry.resource.get("id") if isinstance(entry.resource, dict) else None
                entry.target_id, _ = await write_service.conditional_target(
                    ctx, session, entry.resource_type, entry.criteria, body_id)
            except FhirError as exc:
                raise _fail(entry, exc) from None
        elif entry.method in ("PUT", "PATCH", "DELETE"):
            entry.target_id = entry.id
        if entry.full_url and entry.target_id and entry.method in ("POST", "PUT"):
            mapping[entry.full_url] = f"{entry.resource_type}/{entry.target_id}"
    return mapping


def _check_overlap(planned: list[Entry]) -> None:
    """Two writes to one resource in one transaction are an error (http.html#trules)."""
    seen: dict[tuple[str, str], Entry] = {}
    for entry in planned:
        if entry.method == "GET" or entry.method == "HEAD" or entry.target_id is None:
            continue
        if entry.method == "POST" and entry.if_none_exist and entry.extras.get("found"):
            continue
        key = (entry.resource_type, entry.target_id)
        if key in seen:
            raise BadRequest(f"{entry.label} and {seen[key].label} both write "
                             f"{key[0]}/{key[1]}; a transaction may change a resource once")
        seen[key] = entry


async def _resolve_conditional_references(ctx: ServiceContext, session: Session,
                                          entry: Entry, known: dict[str, str]) -> None:
    """Replace ``Type?query`` references by the single match, searched once per Bundle."""
    refs: list[str] = entry.extras.get("conditional", [])
    resolved: dict[str, str] = {}
    for ref in refs:
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


async def _run(ctx: ServiceContext, session: Session, entry: Entry,
               base_url: str) -> EntryResponse:
    """One entry, inside ``session``."""
    if_match = None if entry.if_match is None else parse_etag(entry.if_match)
    rtype = entry.resource_type
    if entry.method in ("POST", "PUT"):
        known = entry.extras.setdefault("known_references", {})
        await _resolve_conditional_references(ctx, session, entry, known)
    if entry.method == "POST":
        text = write_service.dumps(entry.resource)
        result = await write_service.create(ctx, rtype, entry.resource, text, session=session,
                                            id=entry.target_id)
        return EntryResponse(_status(result), result.version)
    if entry.method == "PUT":
        target = entry.target_id or entry.id
        assert target is not None
        if entry.criteria is not None:
            entry.resource["id"] = target
        text = write_service.dumps(entry.resource)
        result = await write_service.update(ctx, rtype, target, entry.resource, text, if_match,
                                            session=session)
        return EntryResponse(_status(result), result.version)
    if entry.method == "PATCH":
        media, body = _patch_body(entry)
        if entry.criteria is not None:
            result = await write_service.conditional_patch(ctx, rtype, entry.criteria, media,
                                                           body, if_match, session=session)
        else:
            assert entry.id is not None
            result = await write_service.patch(ctx, rtype, entry.id, media, body, if_match,
                                               session=session)
        return EntryResponse(200, result.version)
    if entry.method == "DELETE":
        if entry.criteria is not None:
            result = await write_service.conditional_delete(ctx, rtype, entry.criteria,
                                                            session=session)
        else:
            assert entry.id is not None
            result = await write_service.delete(ctx, rtype, entry.id, if_match, session=session)
        return EntryResponse(204, result.version if result.outcome == "deleted" else None)
    return await _get(ctx, session, entry, base_url)


async def _get(ctx: ServiceContext, session: Session, entry: Entry,
               base_url: str) -> EntryResponse:
    """GET/HEAD entries: read, vread or search, seeing the transaction's own writes."""
    if entry.id is None:
        from urllib.parse import parse_qsl

        pairs = parse_qsl(entry.criteria or "", keep_blank_values=True)
        request = search_service.parse(ctx, [entry.resource_type], pairs, strict=False)
        sctx = search_service.search_context(ctx, base_url)
        result = await search_service.run(ctx, request, sctx, session=session)
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset",
                  "entry": [{"fullUrl": f"{base_url}/{r.version.resource_type}/{r.version.id}",
                             "resource": orjson.Fragment(r.version.content or "{}"),
                             "search": {"mode": "match"}} for r in result.matches]}
        if result.total is not None:
            bundle["total"] = result.total
        return EntryResponse(200, resource=bundle, kind="read")
    if entry.version is not None:
        version = await read_service.vread(ctx, entry.resource_type, entry.id, entry.version,
                                           session=session)
    else:
        version = await read_service.read(ctx, entry.resource_type, entry.id, session=session)
    if entry.if_none_match is not None and parse_etag(entry.if_none_match) == \
            version.version_id:
        return EntryResponse(304, version, kind="bare")
    if entry.if_modified_since is not None:
        since = parse_http_date(entry.if_modified_since, "ifModifiedSince")
        if version.last_updated.replace(microsecond=0) <= since:
            return EntryResponse(304, version, kind="bare")
    if entry.method == "HEAD":
        return EntryResponse(200, version, kind="bare")
    return EntryResponse(200, version, kind="read")


def _patch_body(entry: Entry) -> tuple[str, Any]:
    """A PATCH entry's patch: a Binary holding JSON Patch, or FHIRPath Patch Parameters."""
    resource = entry.resource
    if not isinstance(resource, dict):
        raise BadRequest("a PATCH entry needs a Binary or Parameters resource")
    if resource.get("resourceType") == "Parameters":
        return "application/fhir+json", resource
    if resource.get("resourceType") == "Binary":
        import base64

        media = resource.get("contentType", "")
        try:
            body = orjson.loads(base64.b64decode(resource.get("data", "")))
        except (ValueError, orjson.JSONDecodeError):
            raise BadRequest("the Binary of a PATCH entry does not hold JSON") from None
        return media, body
    raise BadRequest("a PATCH entry needs a Binary or Parameters resource")
