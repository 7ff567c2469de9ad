"""SMART scopes (App Launch 2.0 section "Scopes and Launch Context") as an AccessScope.

``patient/Observation.rs?category=laboratory`` becomes a rule admitting, for reading and
searching, the Observations with that category in the launch patient's compartment;
v1 ``read`` is ``rs``, ``write`` is ``cud`` and ``*`` is ``cruds``. ``user/`` and
``system/`` rules are not narrowed to a compartment (a user's own permissions are what
its scopes say). Wildcard types never reach the audit trail (``AuditEvent`` needs a
scope naming it), and only ``system/*.*`` (``system/*.cruds``) may run operations on
the server itself. Scopes that grant nothing here (an unknown type, a ``patient/``
scope without a patient) are left out, never widened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fhir_server.errors import FhirError
from fhir_server.search.request import AnyClause
from fhir_server.service.access import (
    ALL_PERMISSIONS,
    NOT_IN_WILDCARDS,
    AccessRule,
    AccessScope,
)
from fhir_server.service.compartment import compartment
from fhir_server.service.context import ServiceContext

_RESOURCE_SCOPE = re.compile(
    r"(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{1,63})"
    r"\.(?P<permissions>read|write|\*|c?r?u?d?s?)(?:\?(?P<query>.*))?")
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": ALL_PERMISSIONS}


@dataclass(frozen=True, slots=True)
class ResourceScope:
    """One parsed resource scope."""

    context: str  # patient | user | system
    resource_type: str | None  # None: ``*``
    permissions: frozenset[str]
    query: tuple[tuple[str, str], ...] = ()


def resource_scopes(granted: str | list[str] | tuple[str, ...]) -> list[ResourceScope]:
    """The resource scopes among ``granted`` (space-separated or a list); ``launch``,
    ``openid`` and the like are not resource scopes."""
    words = granted.split() if isinstance(granted, str) else list(granted)
    out: list[ResourceScope] = []
    for word in words:
        found = _RESOURCE_SCOPE.fullmatch(word)
        if found is None or not found["permissions"]:
            continue
        text = found["permissions"]
        permissions = _V1.get(text) or frozenset(text)
        rtype = None if found["type"] == "*" else found["type"]
        query = tuple(parse_qsl(found["query"] or "", keep_blank_values=True))
        out.append(ResourceScope(found["context"], rtype, permissions, query))
    return out


def access_scope(ctx: ServiceContext, granted: str | list[str] | tuple[str, ...],
                 patient: str | None) -> AccessScope:
    """What a token granting ``granted`` (with launch patient ``patient``) may do."""
    rules: list[AccessRule] = []
    admin = False
    in_patient = False
    for scope in resource_scopes(granted):
        if scope.context == "patient" and not patient:
            continue
        if scope.resource_type is not None and scope.resource_type not in ctx.resource_types:
            continue
        criteria: tuple[AnyClause, ...] = ()
        if scope.query:
            if scope.resource_type is None:
                continue  # criteria need a type to be understood
            try:
                criteria = tuple(ctx.search.parser.criteria(scope.resource_type,
                                                            list(scope.query)))
            except FhirError:
                continue  # a restriction not understood grants nothing
        in_compartment = scope.context == "patient"
        in_patient = in_patient or in_compartment
        rules.append(AccessRule(
            scope.resource_type, criteria, scope.permissions, in_compartment,
            NOT_IN_WILDCARDS if scope.resource_type is None else frozenset()))
        admin = admin or (scope.context == "system" and scope.resource_type is None
                          and scope.permissions == ALL_PERMISSIONS and not criteria)
    owner = compartment(ctx, "Patient", patient) if in_patient and patient else None
    return AccessScope(tuple(rules), owner, admin)
