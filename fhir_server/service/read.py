"""read and vread: current and historical versions, with deletions answered as 410."""

from __future__ import annotations

from fhir_server.api.headers import etag, http_date
from fhir_server.errors import Gone, NotFound
from fhir_server.service.context import ServiceContext, valid_id
from fhir_server.service.repository import StoredVersion


def _deleted(version: StoredVersion) -> Gone:
    return Gone(
        f"{version.resource_type}/{version.id} was deleted (version {version.version_id})",
        headers={"ETag": etag(version.version_id),
                 "Last-Modified": http_date(version.last_updated)},
    )


async def read(ctx: ServiceContext, resource_type: str, id: str) -> StoredVersion:
    """The current version; NotFound if never stored, Gone if deleted."""
    ctx.check_type(resource_type)
    version = await ctx.repository.read(resource_type, id) if valid_id(id) else None
    if version is None:
        raise NotFound(f"{resource_type}/{id} is not known")
    if version.deleted:
        raise _deleted(version)
    return version


async def vread(ctx: ServiceContext, resource_type: str, id: str, vid: str) -> StoredVersion:
    """One version; NotFound if there is no such version, Gone if it is a deletion."""
    ctx.check_type(resource_type)
    version = None
    # isascii: str.isdigit() also accepts digits such as '³' that int() refuses.
    if valid_id(id) and vid.isascii() and vid.isdigit() and len(vid) < 10:
        version = await ctx.repository.vread(resource_type, id, int(vid))
    if version is None:
        raise NotFound(f"{resource_type}/{id}/_history/{vid} is not known")
    if version.deleted:
        raise _deleted(version)
    return version
