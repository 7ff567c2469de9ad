"""The terminology operations' use of the context: the service over the catalog, and
value sets named by id (the catalog's, else a stored ValueSet) or by canonical URL."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server.errors import BadRequest, NotFound, ServiceUnavailable
from fhir_server.service import read
from fhir_server.service.context import ServiceContext
from fhir_server.terminology import TerminologyService


def service(ctx: ServiceContext) -> TerminologyService:
    """The terminology service of this context."""
    if ctx.terminology is None:
        raise ServiceUnavailable("terminology is not available here")
    return ctx.terminology


async def value_set_by_id(ctx: ServiceContext, vs_id: str) -> dict[str, Any]:
    """``ValueSet/[id]``: a shipped or profile-folder ValueSet of that id, else the
    stored one (NotFound, Gone as a read answers)."""
    found = service(ctx).value_set_by_id(vs_id)
    if found is not None:
        return found
    version = await read.read(ctx, "ValueSet", vs_id)
    return dict(orjson.loads(version.content or "{}"))


def value_set_by_url(ctx: ServiceContext, url: str, version: str | None) -> dict[str, Any]:
    """The ValueSet of canonical ``url`` (``url|version`` or ``valueSetVersion``: the
    server holds one version of each, and answers only for that one)."""
    base, _, in_url = url.partition("|")
    wanted = version or in_url or None
    found = service(ctx).value_set(base)
    if wanted and found.get("version") and found["version"] != wanted:
        raise NotFound(f"the value set {base} is known in version {found['version']}, "
                       f"not {wanted}")
    return found


def given_value_set(resource: Any) -> dict[str, Any]:
    """A ValueSet given in the request (``valueSet`` parameter); BadRequest otherwise."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "ValueSet":
        raise BadRequest("the parameter valueSet needs a ValueSet resource")
    if not isinstance(resource.get("compose"), dict) and \
            not isinstance(resource.get("expansion"), dict):
        raise BadRequest("the given ValueSet has no compose to expand")
    return resource
