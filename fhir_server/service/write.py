"""create, update, patch and delete, plain and conditional: checks before anything is
stored, then one atomic write of the resource with its search index rows.

A plain write is a single statement; a conditional interaction opens a transaction on
``ctx.repository`` (search and write under one advisory lock). Inside a transaction
Bundle, ``ctx.repository`` is that transaction's session, so its entries share it.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

import orjson

from fhir_server.errors import BadRequest, NotFound, PayloadTooLarge, PreconditionFailed
from fhir_server.search.index import IndexRows
from fhir_server.service import search as search_service
from fhir_server.service.context import ServiceContext, check_id_for_write, valid_id
from fhir_server.service.delegating import SessionRepository
from fhir_server.service.repository import SearchRow, Session, WriteMethod, WriteResult


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
    body["id"] = id
    meta = body.get("meta")
    if isinstance(meta, dict):
        # Server-maintained: the database assigns both.
        meta.pop("versionId", None)
        meta.pop("lastUpdated", None)
        if not meta:
            del body["meta"]
    ctx.validator.validate(body)
    return ctx.search.indexer.rows(body, ctx.bases)


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
                 if_none_exist: str | None = None, id: str | None = None) -> WriteResult:
    """The create interaction: a server-assigned id (a client's id is ignored, per spec).

    With ``if_none_exist`` (conditional create) an existing single match is returned
    as outcome ``found`` and nothing is written; several matches are a 412. ``id`` is
    an id the server chose beforehand (transactions map fullUrls to it).
    """
    ctx.check_type(resource_type)
    check_size(ctx, text)
    new_id = id or str(uuid.uuid4())
    index = _prepare(ctx, resource_type, body, new_id)
    if if_none_exist is None:
        return await ctx.repository.write(resource_type, new_id, text, "POST", index=index)
    async with ctx.repository.transaction() as s:
        found = await single_match(ctx, s, resource_type, if_none_exist,
                                    f"If-None-Exist {if_none_exist!r}")
        if found is not None:
            return WriteResult("found", found.version)
        return await s.write(resource_type, new_id, text, "POST", index=index)


async def update(ctx: ServiceContext, resource_type: str, id: str, body: Any, text: str,
                 if_match: int | None, method: WriteMethod = "PUT") -> WriteResult:
    """The update interaction; creates the resource when the id is new (update-as-create)."""
    ctx.check_type(resource_type)
    check_id_for_write(id)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object holding a FHIR resource")
    if "id" not in body:
        raise BadRequest("the resource has no id; an update must carry the id of the URL")
    if body["id"] != id:
        raise BadRequest(f"the resource id {body['id']!r} does not match {id!r} in the URL")
    check_size(ctx, text)
    index = _prepare(ctx, resource_type, body, id)
    return await ctx.repository.write(resource_type, id, text, method, if_match, index)


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
                             body: Any, text: str, if_match: int | None) -> WriteResult:
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
                patch_body: Any, if_match: int | None) -> WriteResult:
    """The patch interaction: apply the patch to the current version, validate, store."""
    from fhir_server.service.patch import apply_patch

    ctx.check_type(resource_type)
    if not valid_id(id):
        raise NotFound(f"{resource_type}/{id} is not known")
    async with ctx.repository.transaction() as s:
        current = await s.read(resource_type, id)
        if current is None or current.deleted or current.content is None:
            raise NotFound(f"{resource_type}/{id} is not known")
        if if_match is not None and if_match != current.version_id:
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
                            if_match: int | None) -> WriteResult:
    """``PATCH /Type?criteria``: patch the single match (none: 404; several: 412)."""
    ctx.check_type(resource_type)
    async with ctx.repository.transaction() as s:
        found = await single_match(ctx, s, resource_type, criteria)
        if found is None:
            raise NotFound(f"no {resource_type} matches {criteria!r}")
        return await patch(ctx.with_repository(SessionRepository(s)), resource_type,
                           found.version.id, media_type, patch_body, if_match)


async def delete(ctx: ServiceContext, resource_type: str, id: str,
                 if_match: int | None) -> WriteResult:
    """The delete interaction; deleting a missing or deleted resource is a no-op."""
    ctx.check_type(resource_type)
    if not valid_id(id):
        raise NotFound(f"{resource_type}/{id} is not a valid resource id")
    return await ctx.repository.write(resource_type, id, None, "DELETE", if_match)


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
