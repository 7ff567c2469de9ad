"""``$validate``: what a write of a resource would say about it, with nothing stored.

The resource goes through the same steps a write takes before it stores (the stored
form from ``write.as_stored``, the cost check of a SearchParameter's expressions, the
validator's one pipeline), and the mode adds what that interaction would refuse:
``create`` and ``update`` the caller's permission, ``update`` the id and the stored
resource, ``delete`` the reasons a deletion is refused (the audit trail is
append-only; SearchParameters need the admin scope). Every issue is collected, of any
severity, instead of stopping at the first: the answer is the list.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.audit import policy
from fhir_server.errors import BadRequest, FhirError, Issue
from fhir_server.service import read
from fhir_server.service.access import OPERATOR_TYPES, AccessScope
from fhir_server.service.context import ServiceContext, valid_id
from fhir_server.service.search_parameters import check_costs
from fhir_server.service.write import as_stored

#: the modes of the specification's $validate (resource-operation-validate)
MODES = ("create", "update", "delete")


@dataclass(frozen=True)
class Validation:
    """One $validate request: the URL's type (and id, at instance level), the resource
    given (None: none), the mode and the profile (canonical URL) asked for."""

    resource_type: str
    id: str | None = None
    resource: Any = None
    mode: str | None = None
    profile: str | None = None
    #: the caller's access scope (None: the server itself)
    scope: AccessScope | None = None


async def run(ctx: ServiceContext, request: Validation) -> list[Issue]:
    """Every issue found, each with an ``expression``; BadRequest for a request that
    cannot be answered, NotFound/Gone for an instance that is not there."""
    ctx.check_type(request.resource_type)
    if request.mode is not None and request.mode not in MODES:
        raise BadRequest(f"unknown $validate mode {request.mode!r}: create, update or "
                         "delete")
    rtype = request.resource_type
    stored: dict[str, Any] | None = None
    if request.id is not None:
        version = await read.read(ctx, rtype, request.id)
        stored = orjson.loads(version.content) if version.content is not None else {}
    if request.mode == "delete":
        if request.id is None:
            raise BadRequest("mode=delete validates the deletion of one resource: "
                             f"[base]/{rtype}/[id]/$validate")
        return _located(rtype, _delete_issues(rtype, request.scope))
    resource = request.resource if request.resource is not None else stored
    if resource is None:
        raise BadRequest(f"{rtype}/$validate needs a resource: a Parameters body with a "
                         "'resource' parameter, or the resource itself")
    resource = copy.deepcopy(resource)  # checked in its stored form, the caller's intact
    found: list[Issue] = []
    if request.mode == "create":
        found += _permission(rtype, "c", "create", request.scope)
        if isinstance(resource, dict):
            as_stored(resource, str(uuid.uuid4()))  # a create ignores the client's id
    elif request.mode == "update":
        found += await _update_issues(ctx, request, resource)
    found += _content_issues(ctx, rtype, resource, request.profile)
    return _located(rtype, found)


def _content_issues(ctx: ServiceContext, rtype: str, resource: Any,
                    profile: str | None) -> list[Issue]:
    """What a write checks of the resource itself, every issue kept."""
    found: list[Issue] = []
    if isinstance(resource, dict) and "resourceType" in resource \
            and resource["resourceType"] != rtype:
        found.append(Issue("invalid", f"resourceType {resource['resourceType']!r} does not "
                           f"match {rtype!r} in the URL", expression=("resourceType",)))
    if isinstance(resource, dict) and resource.get("resourceType") == "SearchParameter":
        try:
            check_costs(ctx.settings, resource)
        except FhirError as exc:
            found += exc.issues
    found += ctx.validator.issues(resource, (profile,) if profile else ())
    return found


async def _update_issues(ctx: ServiceContext, request: Validation,
                         resource: Any) -> list[Issue]:
    """What an update of ``resource`` would refuse besides its content: the id (the
    URL's at instance level), a resource that is not stored, the caller's permission."""
    rtype = request.resource_type
    found = _permission(rtype, "u", "update", request.scope)
    if rtype in policy.APPEND_ONLY:
        found.append(Issue("business-rule", f"{rtype} resources are the audit trail: they "
                           "cannot be updated", expression=(rtype,)))
    body_id = resource.get("id") if isinstance(resource, dict) else None
    where = (f"{rtype}.id",)
    if body_id is None:
        found.append(Issue("required", "an update needs the resource's id",
                           expression=where))
    elif request.id is not None and body_id != request.id:
        found.append(Issue("invalid", f"the resource id {body_id!r} does not match "
                           f"{request.id!r} in the URL", expression=where))
    elif request.id is None:
        if not isinstance(body_id, str) or not valid_id(body_id):
            found.append(Issue("invalid", f"{body_id!r} is not a valid id",
                               expression=where))
        else:
            current = await ctx.repository.read(rtype, body_id)
            if current is None or current.deleted:
                found.append(Issue("not-found", f"{rtype}/{body_id} does not exist (or "
                                   "was deleted): there is nothing to update",
                                   expression=where))
    if isinstance(resource, dict) and isinstance(body_id, str):
        as_stored(resource, body_id)
    return found


def _delete_issues(rtype: str, scope: AccessScope | None) -> list[Issue]:
    """The reasons a deletion of a stored ``rtype`` resource would be refused."""
    found = _permission(rtype, "d", "delete", scope)
    if rtype in policy.APPEND_ONLY:
        found.append(Issue("business-rule", f"{rtype} resources are the audit trail: they "
                           "cannot be deleted", expression=(rtype,)))
    return found


def _permission(rtype: str, letter: str, what: str,
                scope: AccessScope | None) -> list[Issue]:
    if scope is None:
        return []
    if rtype in OPERATOR_TYPES and not scope.admin:
        return [Issue("forbidden", f"a {what} of a {rtype} needs the admin scope "
                      "(system/*.*)", expression=(rtype,))]
    if not scope.permits(letter, rtype):
        return [Issue("forbidden", f"the token's scopes do not allow {what} ({letter}) "
                      f"on {rtype}", expression=(rtype,))]
    return []


def _located(rtype: str, found: list[Issue]) -> list[Issue]:
    """Each issue with an expression: the resource itself where none is more precise."""
    return [issue if issue.expression else Issue(issue.code, issue.diagnostics,
                                                  issue.severity, (rtype,))
            for issue in found]


def outcome(rtype: str, found: list[Issue]) -> dict[str, Any]:
    """The OperationOutcome answering $validate: the issues, or "All OK" when none."""
    issues = [issue.to_json() for issue in found]
    if not issues:
        issues = [{"severity": "information", "code": "informational",
                   "diagnostics": "All OK", "expression": [rtype]}]
    return {"resourceType": "OperationOutcome", "issue": issues}
