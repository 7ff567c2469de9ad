"""create, update and delete, plain and conditional: checks before anything is stored,
then one atomic write of the resource with its search index rows."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

from fhir_server.errors import BadRequest, NotFound, PreconditionFailed
from fhir_server.search.index import IndexRows
from fhir_server.service import search as search_service
from fhir_server.service.context import ServiceContext, check_id_for_write, valid_id
from fhir_server.service.repository import SearchRow, Session, WriteMethod, WriteResult


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
    return ctx.search.indexer.rows(body)


async def _matches(ctx: ServiceContext, session: Session, resource_type: str,
                   criteria: str) -> list[SearchRow]:
    """Up to two current resources matching a conditional interaction's criteria."""
    pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
    if not pairs:
        raise BadRequest("a conditional interaction needs search criteria")
    request = search_service.parse(ctx, [resource_type], pairs, strict=True)
    request.count, request.includes, request.sort = 2, [], []
    request.total, request.summary, request.cursor = "none", None, None
    sctx = search_service.search_context(ctx, ctx.settings.fhir_base_url)
    result = await search_service.run(ctx, request, sctx, session=session)
    return result.matches


async def create(ctx: ServiceContext, resource_type: str, body: Any, text: str,
                 if_none_exist: str | None = None) -> WriteResult:
    """The create interaction: a server-assigned id (a client's id is ignored, per spec).

    With ``if_none_exist`` (conditional create) an existing single match is returned
    as outcome ``found`` and nothing is written; several matches are a 412.
    """
    ctx.check_type(resource_type)
    new_id = str(uuid.uuid4())
    index = _prepare(ctx, resource_type, body, new_id)
    if if_none_exist is None:
        return await ctx.repository.write(resource_type, new_id, text, "POST", index=index)
    async with ctx.repository.transaction() as session:
        await session.lock(resource_type, if_none_exist)
        found = await _matches(ctx, session, resource_type, if_none_exist)
        if len(found) > 1:
            raise PreconditionFailed(
                f"If-None-Exist {if_none_exist!r} matches more than one {resource_type}")
        if found:
            return WriteResult("found", found[0].version)
        return await session.write(resource_type, new_id, text, "POST", index=index)


async def update(ctx: ServiceContext, resource_type: str, id: str, body: Any, text: str,
                 if_match: int | None, method: WriteMethod = "PUT",
                 session: Session | None = None) -> WriteResult:
    """The update interaction; creates the resource when the id is new (update-as-create)."""
    ctx.check_type(resource_type)
    check_id_for_write(id)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object holding a FHIR resource")
    if "id" not in body:
        raise BadRequest("the resource has no id; an update must carry the id of the URL")
    if body["id"] != id:
        raise BadRequest(f"the resource id {body['id']!r} does not match {id!r} in the URL")
    index = _prepare(ctx, resource_type, body, id)
    store = session or ctx.repository
    return await store.write(resource_type, id, text, method, if_match, index)


async def conditional_update(ctx: ServiceContext, resource_type: str, criteria: str,
                             body: Any, text: str, if_match: int | None) -> WriteResult:
    """``PUT /Type?criteria``: update the single match, or create when there is none."""
    ctx.check_type(resource_type)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object holding a FHIR resource")
    async with ctx.repository.transaction() as session:
        await session.lock(resource_type, criteria)
        found = await _matches(ctx, session, resource_type, criteria)
        if len(found) > 1:
            raise PreconditionFailed(f"{criteria!r} matches more than one {resource_type}")
        if found:
            target = found[0].version.id
            if "id" in body and body["id"] != target:
                raise BadRequest(f"the resource id {body['id']!r} does not match the "
                                 f"matching {resource_type}/{target}")
        else:
            target = body.get("id") or str(uuid.uuid4())
        body["id"] = target
        return await update(ctx, resource_type, target, body, text, if_match,
                            session=session)


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
    async with ctx.repository.transaction() as session:
        await session.lock(resource_type, criteria)
        found = await _matches(ctx, session, resource_type, criteria)
        if len(found) > 1:
            raise PreconditionFailed(f"{criteria!r} matches more than one {resource_type}")
        if not found:
            return WriteResult("absent", None)
        return await session.write(resource_type, found[0].version.id, None, "DELETE")
