"""Idempotency and preparation rules for what the importer hands to the service code.

- :func:`prepare_bundle`: POST entries without ``ifNoneExist`` become PUTs to a stable
  id, so that a second run writes identical content to the same ids (``unchanged``).
- :func:`resource_id`: the id an upserted resource (NDJSON line, collection entry,
  single resource) is stored under.
- :func:`resolve_conditional_references`: conditional references resolved once per
  Bundle instead of once per entry, where that cannot change the result.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import orjson

from fhir_server.errors import FhirError
from fhir_server.service import write as write_service
from fhir_server.service.bundle_plan import (
    is_conditional,
    reference_holders,
    rewrite_references,
)
from fhir_server.service.context import ServiceContext, valid_id

#: uuid5 namespace of ids derived from content (resources that come without an id).
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:fhir-server:import")
_WRITES = ("POST", "PUT", "PATCH", "DELETE")


def content_id(resource: dict[str, Any]) -> str:
    """A stable id for a resource without one: uuid5 over its canonical JSON."""
    canonical = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS, default=_exact)
    return str(uuid.uuid5(ID_NAMESPACE, canonical.decode()))


def _exact(value: Any) -> Any:
    """Decimals (exact Bundle parsing) keep their digits in the canonical form."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialize {type(value).__name__}")


def resource_id(resource: dict[str, Any], full_url: str | None = None) -> str:
    """The id an upserted resource is stored under: its own ``id``; else a
    ``urn:uuid:`` fullUrl's uuid; else one derived from its content."""
    own = resource.get("id")
    if own is not None:
        return str(own) if not isinstance(own, str) else own
    if full_url and full_url.startswith("urn:uuid:") and valid_id(full_url[9:]):
        return full_url[9:]
    return content_id(resource)


def prepare_bundle(bundle: dict[str, Any]) -> int:
    """Make a batch/transaction Bundle idempotent in place; returns entries rewritten.

    A POST without ``ifNoneExist`` would create a new resource on every run, so it
    becomes ``PUT Type/<id>``: the uuid of a ``urn:uuid:`` fullUrl (Synthea), else the
    resource's own id, else an id derived from its content. References to the fullUrl
    are still rewritten by the transaction (PUT entries map fullUrls too); a re-run then
    finds identical content and stores no new version. POSTs with ``ifNoneExist`` stay
    conditional creates.
    """
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return 0
    rewritten = 0
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        request, resource = entry.get("request"), entry.get("resource")
        if not isinstance(request, dict) or not isinstance(resource, dict):
            continue
        if str(request.get("method", "")).upper() != "POST" or request.get("ifNoneExist"):
            continue
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str):
            continue
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and full_url.startswith("urn:uuid:") \
                and valid_id(full_url[9:]):
            target = full_url[9:]
        elif isinstance(resource.get("id"), str) and valid_id(resource["id"]):
            target = resource["id"]
        else:
            resource.pop("id", None)
            target = content_id(resource)
        resource["id"] = target
        entry["request"] = {k: v for k, v in request.items()
                            if k not in ("method", "url")} | {"method": "PUT",
                                                               "url": f"{rtype}/{target}"}
        rewritten += 1
    return rewritten


async def resolve_conditional_references(ctx: ServiceContext,
                                         bundle: dict[str, Any]) -> int:
    """Replace conditional references that match exactly one resource; returns how many
    distinct references were resolved.

    The transaction code resolves a conditional reference for every entry that holds
    one, with a search each time (Synthea patient Bundles refer to the same few
    Organizations and Practitioners from hundreds of entries). Resolving each distinct
    reference once beforehand gives the same ``Type/id`` as long as the Bundle itself
    does not write resources of that type, so only such types are resolved here; the
    rest (and anything matching none or several) is left to the transaction, which
    reports it as the API would.
    """
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return 0
    written: set[str] = set()
    holders: list[tuple[dict[str, Any], str]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        request = entry.get("request")
        if isinstance(request, dict) and str(request.get("method", "")).upper() in _WRITES:
            url = str(request.get("url", ""))
            written.add(url.split("?")[0].split("/")[0])
            resource = entry.get("resource")
            if isinstance(resource, dict):
                written.add(str(resource.get("resourceType")))
                holders.extend(h for h in reference_holders(resource) if is_conditional(h[1]))
    candidates = sorted({r for _, r in holders if r.split("?", 1)[0] not in written})
    if not candidates:
        return 0
    resolved: dict[str, str] = {}
    async with ctx.repository.transaction() as session:
        for ref in candidates:
            rtype, _, criteria = ref.partition("?")
            try:
                ctx.check_type(rtype)
                found = await write_service.matches(ctx, session, rtype, criteria)
            except FhirError:
                continue  # the transaction reports it
            if len(found) == 1:
                resolved[ref] = f"{rtype}/{found[0].version.id}"
    for holder, ref in holders:
        if ref in resolved:
            holder["reference"] = resolved[ref]
    return len(resolved)


def _urn_uuid(entry: dict[str, Any]) -> str | None:
    full_url = entry.get("fullUrl")
    if isinstance(full_url, str) and full_url.startswith("urn:uuid:") \
            and valid_id(full_url[9:]):
        return full_url[9:]
    return None


def entry_key(entry: Any) -> tuple[str, str] | None:
    """The ``(type, id)`` a batch/transaction entry writes when that is known without the
    database, the same before and after :func:`prepare_bundle`: ``PUT Type/id``; a POST
    without ``ifNoneExist`` to its ``urn:uuid`` or own id; a conditional create to its
    ``urn:uuid`` (see :func:`claim_conditional_creates`). None otherwise."""
    if not isinstance(entry, dict):
        return None
    request, resource = entry.get("request"), entry.get("resource")
    if not isinstance(request, dict) or not isinstance(resource, dict):
        return None
    method = str(request.get("method", "")).upper()
    if method == "PUT":
        url = str(request.get("url", ""))
        parts = url.split("/")
        if "?" in url or len(parts) != 2 or not valid_id(parts[1]):
            return None
        return parts[0], parts[1]
    rtype = resource.get("resourceType")
    if method != "POST" or not isinstance(rtype, str):
        return None
    uid = _urn_uuid(entry)
    if uid is not None:
        return rtype, uid
    own = resource.get("id")
    if not request.get("ifNoneExist") and isinstance(own, str) and valid_id(own):
        return rtype, own
    return None


def upsert_key(resource: Any, full_url: str | None = None) -> tuple[str, str] | None:
    """The ``(type, id)`` an upserted resource is stored under, unless that id is derived
    from its content (copies with one derived id have the same content anyway)."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return None
    if resource.get("id") is None and not (
            full_url and full_url.startswith("urn:uuid:") and valid_id(full_url[9:])):
        return None
    return resource["resourceType"], resource_id(resource, full_url)


async def claim_conditional_creates(ctx: ServiceContext, bundle: dict[str, Any],
                                    superseded: frozenset[int] = frozenset()) -> set[int]:
    """Conditional creates that match nothing keep their ``urn:uuid`` as id; returns the
    entries to leave out (superseded copies, see ``duplicates.py``).

    The transaction would give a conditional create that matches nothing a new server
    id, while every other entry of a Synthea extract keeps its Bundle uuid: a second
    extract of the same Synthea world that PUTs that uuid would then make a duplicate
    with the same identifier. So a ``POST`` with ``ifNoneExist`` and a ``urn:uuid:``
    fullUrl whose condition matches nothing becomes ``PUT Type/<uuid>`` (references to
    the fullUrl follow, as for every PUT entry); one that matches stays a conditional
    create (the transaction finds the match). A superseded copy that matches nothing
    is left out: the last copy in file order creates ``Type/<uuid>``, and references to
    the fullUrl are rewritten to it by :func:`drop_entries`. A condition that appears
    twice in the Bundle, or that fails, is left to the transaction.
    """
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return set()
    claims: dict[tuple[str, str], list[int]] = {}
    for index, entry in enumerate(entries):
        key = entry_key(entry)
        if key is None or not isinstance(entry, dict):
            continue
        request = entry["request"]
        condition = request.get("ifNoneExist")
        if str(request.get("method", "")).upper() != "POST" or not condition \
                or _urn_uuid(entry) is None:
            continue
        claims.setdefault((key[0], str(condition)), []).append(index)
    claims = {k: v for k, v in claims.items() if len(v) == 1}
    if not claims:
        return set()
    dropped: set[int] = set()
    async with ctx.repository.transaction() as session:
        for (rtype, condition), (index,) in sorted(claims.items()):
            try:
                ctx.check_type(rtype)
                found = await write_service.matches(ctx, session, rtype, condition)
            except FhirError:
                continue  # the transaction reports it
            if found:
                continue
            if index in superseded:
                dropped.add(index)
                continue
            entry = entries[index]
            uid = _urn_uuid(entry)
            assert uid is not None
            entry["resource"]["id"] = uid
            entry["request"] = {k: v for k, v in entry["request"].items()
                                if k not in ("method", "url", "ifNoneExist")} | {
                "method": "PUT", "url": f"{rtype}/{uid}"}
    return dropped


def drop_entries(bundle: dict[str, Any], indices: set[int]) -> tuple[list[int],
                                                                     list[tuple[str, str]]]:
    """Leave out the entries at ``indices`` (superseded copies whose ``entry_key`` is
    known); references to their fullUrls become ``Type/id``. Returns the original index
    of every entry kept, and the keys left out."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return [], []
    mapping: dict[str, str] = {}
    kept: list[int] = []
    keys: list[tuple[str, str]] = []
    remaining: list[Any] = []
    for index, entry in enumerate(entries):
        key = entry_key(entry) if index in indices else None
        if key is None:
            kept.append(index)
            remaining.append(entry)
            continue
        keys.append(key)
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str):
            mapping[full_url] = f"{key[0]}/{key[1]}"
    if mapping:
        for entry in remaining:
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                rewrite_references(entry["resource"], mapping)
    bundle["entry"] = remaining
    return kept, keys
