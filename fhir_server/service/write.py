"""create, update and delete: checks before anything is stored, then one atomic write."""

from __future__ import annotations

import uuid
from typing import Any

from fhir_server.errors import BadRequest, NotFound
from fhir_server.service.context import ServiceContext, check_id_for_write, valid_id
from fhir_server.service.repository import WriteMethod, WriteResult


def _prepare(ctx: ServiceContext, resource_type: str, body: Any, id: str) -> None:
    """Check the body is a resource of the URL's type and validate it as it will be stored.

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


async def create(ctx: ServiceContext, resource_type: str, body: Any, text: str) -> WriteResult:
    """The create interaction: a server-assigned id (a client's id is ignored, per spec).

    ``body`` is the parsed JSON, ``text`` the same JSON as received.
    """
    ctx.check_type(resource_type)
    new_id = str(uuid.uuid4())
    _prepare(ctx, resource_type, body, new_id)
    return await ctx.repository.write(resource_type, new_id, text, "POST")


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
    _prepare(ctx, resource_type, body, id)
    return await ctx.repository.write(resource_type, id, text, method, if_match)


async def delete(ctx: ServiceContext, resource_type: str, id: str,
                 if_match: int | None) -> WriteResult:
    """The delete interaction; deleting a missing or deleted resource is a no-op."""
    ctx.check_type(resource_type)
    if not valid_id(id):
        raise NotFound(f"{resource_type}/{id} is not a valid resource id")
    return await ctx.repository.write(resource_type, id, None, "DELETE", if_match)
