"""create, update, patch and delete, plain and conditional: checks before anything is
stored, then one atomic write of the resource with its search index rows.

A plain write is a single statement; a conditional interaction opens a transaction on
``ctx.repository`` (search and write under one advisory lock). Inside a transaction
Bundle, ``ctx.repository`` is that transaction's session, so its entries share it.
"""

from __future__ import annotations

import uuid
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

import orjson

from fhir_server.errors import BadRequest, NotFound, PayloadTooLarge, PreconditionFailed
from fhir_server.search.index import IndexRows
from fhir_server.service import attachments
from fhir_server.service import binary as binary_service
from fhir_server.service import search as search_service
from fhir_server.service.context import ServiceContext, check_id_for_write, valid_id
from fhir_server.service.delegating import SessionRepository
from fhir_server.service.repository import SearchRow, Session, WriteMethod, WriteResult
from fhir_server.service.search_parameters import check_costs

#: ``If-Match: *``: whatever the current version is, there must be one (RFC 9110 13.1.1)
ANY_VERSION: Final = "*"
#: a write's precondition: a version, any current version, or none
IfMatch = int | Literal["*"] | None


def check_size(ctx: ServiceContext, text: str) -> None:
    """413 ``too-long`` for a resource whose JSON passes ``MAX_RESOURCE_BYTES``."""
    limit = ctx.settings.max_resource_bytes
    # A character takes 1 to 4 bytes in UTF-8: encode only when that could matter.
    if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
        raise PayloadTooLarge(f"the resource is larger than the limit of {limit} bytes",
                              code="too-long")


def _prepare(ctx: ServiceContext, resource_type: str, body: Any, id: str) -> IndexRows:
    """Check the body is a resource of the URL's type, validate it as it will be stored,
    and compute its index rows.

    The store writes the JSON text as received (so decimals keep their precision) and
    sets ``id`` and the server's meta fields itself; this check sees the same result.
    """
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object holding a FHIR resource")
    body_type = body.get("resourceType")
    if body_type != resource_type:
        raise BadRequest(
            f"resourceType {body_type!r} in the body does not match {resource_type!r} in the URL")
    as_stored(body, id)
    if resource_type == "SearchParameter":  # evaluated on every write from now on
        check_costs(ctx.settings, body)
    ctx.validator.validate(body)
    return ctx.search.indexer.rows(body, ctx.bases)


def as_stored(body: dict[str, Any], id: str) -> None:
    """The resource as the store writes it: with ``id``, without the meta fields the
    database assigns (``$validate`` checks this form too)."""
    body["id"] = id
    meta = body.get("meta")
    if isinstance(meta, dict):
        meta.pop("versionId", None)
        meta.pop("lastUpdated", None)
        if not meta:
            del body["meta"]


async def _externalize(ctx: ServiceContext, resource_type: str, id: str, body: Any,
                       text: str) -> tuple[str, list[dict[str, Any]]]:
    """Large inline content moved to object storage before anything is written (a
    Binary's ``data``, attachments' ``data``): the resource's text as it will be
    stored, and the Binaries to write in the same transaction."""
    if (ctx.blobs is None or not isinstance(body, dict)
            or body.get("resourceType") != resource_type):
        return text, []  # nothing to move, or a body _prepare refuses
    if resource_type == "Binary":
        changed = await binary_service.externalize(ctx, body, id)
        return (dumps(body) if changed else text), []
    if text and len(text) * 3 // 4 <= ctx.settings.attachment_inline_max_bytes:
        return text, []  # no data in it can decode to more: skip walking the elements
    binaries = await attachments.externalize(ctx, resource_type, id, body)
    return (dumps(body) if binaries else text), binaries


async def _write_binaries(ctx: ServiceContext, session: Session,
                          binaries: list[dict[str, Any]]) -> None:
    for binary in binaries:
        index = _prepare(ctx, "Binary", binary, binary["id"])
        await session.write("Binary", binary["id"], dumps(binary), "POST", index=index)


async def matches(ctx: ServiceContext, session: Session, resource_type: str,
                  criteria: str) -> list[SearchRow]:
    """Up to two current resources matching a conditional interaction's criteria.

    Unknown parameters are errors here (ignoring one could pick the wrong resource).
    """
    pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
    if not pairs:
        raise BadRequest("a conditional interaction needs search criteria")
    request = search_service.parse(ctx, [resource_type], pairs, strict=True)
    if not request.clauses:
        # Only empty values or result parameters: a search that selects everything.
        raise BadRequest(f"the criteria {criteria!r} select no particular {resource_type}; "
                         "a conditional interaction needs at least one search parameter "
                         "with a value")
    request.count, request.includes, request.sort = 2, [], []
    request.total, request.summary, request.cursor = "none", None, None
    page = await session.search(request, 2)
    return page.rows


async def single_match(ctx: ServiceContext, session: Session, resource_type: str,
                        criteria: str, named: str | None = None) -> SearchRow | None:
    """Under the criteria's advisory lock, the one match of a conditional interaction.

    None when nothing matches; several matches are a 412 (``named`` names the criteria in
    its message).
    """
    await session.lock(resource_type, criteria)
    found = await matches(ctx, session, resource_type, criteria)
    if len(found) > 1:
        raise PreconditionFailed(
            f"{named or repr(criteria)} matches more than one {resource_type}")
    return found[0] if found else None


async def create(ctx: ServiceContext, resource_type: str, body: Any, text: str,
                 if_none_exist: str | None = None, id: str | None = None,
                 stored: bool = False) -> WriteResult:
    """The create interaction: a server-assigned id (a client's id is ignored, per spec).

    With ``if_none_exist`` (conditional create) an existing single match is returned
    as outcome ``found`` and nothing is written; several matches are a 412. ``id`` is
    an id the server chose beforehand (transactions map fullUrls to it); ``stored``:
    the server itself stored the content a Binary body names (a raw upload).
    """
    ctx.check_type(resource_type)
    new_id = id or str(uuid.uuid4())
    text, binaries = (text, []) if stored else await _externalize(
        ctx, resource_type, new_id, body, text)
    check_size(ctx, text)  # after large attachments moved out
    index = _prepare(ctx, resource_type, body, new_id)
    if if_none_exist is None and not binaries:
        return await ctx.repository.write(resource_type, new_id, text, "POST", index=index)
    async with ctx.repository.transaction() as s:
        if if_none_exist is not None:
            found = await single_match(ctx, s, resource_type, if_none_exist,
                                        f"If-None-Exist {if_none_exist!r}")
            if found is not None:
                return WriteResult("found", found.version)
        await _write_binaries(ctx, s, binaries)
        return await s.write(resource_type, new_id, text, "POST", index=index)


async def update(ctx: ServiceContext, resource_type: str, id: str, body: Any, text: str,
                 if_match: IfMatch, method: WriteMethod = "PUT",
                 stored: bool = False) -> WriteResult:
    """The update interaction; creates the resource when the id is new (update-as-create).
    ``stored`` as for :func:`create`."""
    ctx.check_type(resource_type)
    check_id_for_write(id)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object holding a FHIR resource")
    if "id" not in body:
        raise BadRequest("the resource has no id; an update must carry the id of the URL")
    if body["id"] != id:
        raise BadRequest(f"the resource id {body['id']!r} does not match {id!r} in the URL")
    text, binaries = (text, []) if stored else await _externalize(
        ctx, resource_type, id, body, text)
    check_size(ctx, text)  # after large attachments moved out
    index = _prepare(ctx, resource_type, body, id)
    version = await _expected(ctx, resource_type, id, if_match)
    if not binaries:
        return await ctx.repository.write(resource_type, id, text, method, version, index)
    async with ctx.repository.transaction() as s:
        await _write_binaries(ctx, s, binaries)
        return await s.write(resource_type, id, text, method, version, index)


async def _expected(ctx: ServiceContext, resource_type: str, id: str,
                    if_match: IfMatch) -> int | None:
    """The version a write must replace: ``*`` is the current one, PreconditionFailed
    when there is none (so ``If-Match: *`` never creates). A version written between
    this read and the write fails the write's own check: a 412, never a lost update."""
    if if_match is None or isinstance(if_match, int):
        return if_match
    current = await ctx.repository.read(resource_type, id)
    if current is None or current.deleted:
        raise PreconditionFailed(f"If-Match: * and {resource_type}/{id} does not exist")
    return current.version_id


async def conditional_target(ctx: ServiceContext, session: Session, resource_type: str,
                             criteria: str, body_id: str | None) -> tuple[str, bool]:
    """The id a conditional update writes to, and whether it already exists."""
    found = await single_match(ctx, session, resource_type, criteria)
    if found is not None:
        target = found.version.id
        if body_id is not None and body_id != target:
            raise BadRequest(f"the resource id {body_id!r} does not match the matching "
                             f"{resource_type}/{target}")
        return target, True
    return body_id or str(uuid.uuid4()), False


async def conditional_update(ctx: ServiceContext, resource_type: str, criteria: str,
                             body: Any, text: str, if_match: IfMatch) -> WriteResult:
    """``PUT /Type?criteria``: update the single match, or create when there is none."""
    ctx.check_type(resource_type)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object holding a FHIR resource")
    async with ctx.repository.transaction() as s:
        target, _ = await conditional_target(ctx, s, resource_type, criteria, body.get("id"))
        body["id"] = target
        return await update(ctx.with_repository(SessionRepository(s)), resource_type, target,
                            body, text, if_match)


async def patch(ctx: ServiceContext, resource_type: str, id: str, media_type: str,
                patch_body: Any, if_match: IfMatch) -> WriteResult:
    """The patch interaction: apply the patch to the current version, validate, store."""
    from fhir_server.service.patch import apply_patch

    ctx.check_type(resource_type)
    if not valid_id(id):
        raise NotFound(f"{resource_type}/{id} is not known")
    async with ctx.repository.transaction() as s:
        current = await s.read(resource_type, id)
        if current is None or current.deleted or current.content is None:
            if if_match == ANY_VERSION:
                raise PreconditionFailed(f"If-Match: * and {resource_type}/{id} does not "
                                         "exist")
            raise NotFound(f"{resource_type}/{id} is not known")
        if if_match not in (None, ANY_VERSION, current.version_id):
            raise PreconditionFailed(
                f"If-Match version {if_match} is not the current version of "
                f"{resource_type}/{id}")
        resource = orjson.loads(current.content)
        patched = apply_patch(resource, media_type, patch_body,
                              definitions=ctx.definitions,
                              max_bytes=ctx.settings.max_resource_bytes)
        if patched.get("resourceType") != resource_type or patched.get("id") != id:
            raise BadRequest("a patch must not change resourceType or id")
        text = dumps(patched)
        return await update(ctx.with_repository(SessionRepository(s)), resource_type, id,
                            patched, text, current.version_id, "PATCH")


async def conditional_patch(ctx: ServiceContext, resource_type: str, criteria: str,
                            media_type: str, patch_body: Any,
                            if_match: IfMatch) -> WriteResult:
    """``PATCH /Type?criteria``: patch the single match (none: 404; several: 412)."""
    ctx.check_type(resource_type)
    async with ctx.repository.transaction() as s:
        found = await single_match(ctx, s, resource_type, criteria)
        if found is None:
            raise NotFound(f"no {resource_type} matches {criteria!r}")
        return await patch(ctx.with_repository(SessionRepository(s)), resource_type,
                           found.version.id, media_type, patch_body, if_match)


async def delete(ctx: ServiceContext, resource_type: str, id: str,
                 if_match: IfMatch) -> WriteResult:
    """The delete interaction; deleting a missing or deleted resource is a no-op."""
    ctx.check_type(resource_type)
    if not valid_id(id):
        raise NotFound(f"{resource_type}/{id} is not a valid resource id")
    version = await _expected(ctx, resource_type, id, if_match)
    return await ctx.repository.write(resource_type, id, None, "DELETE", version)


async def conditional_delete(ctx: ServiceContext, resource_type: str,
                             criteria: str) -> WriteResult:
    """``DELETE /Type?criteria``: delete the single match (none: a no-op; several: 412)."""
    ctx.check_type(resource_type)
    async with ctx.repository.transaction() as s:
        found = await single_match(ctx, s, resource_type, criteria)
        if found is None:
            return WriteResult("absent", None)
        return await s.write(resource_type, found.version.id, None, "DELETE")


def dumps(resource: Any) -> str:
    """JSON text of a resource built in Python; Decimals keep every digit."""
    return orjson.dumps(resource, default=_decimal).decode()


def _decimal(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialize {type(value).__name__}")
