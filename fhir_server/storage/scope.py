"""An access scope as conditions on statements of the resource table: what reads see
(``visible``, ``scoped_statement``), and what a write must pass on the version it
replaces and the one it writes (``admitted_statement``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.service.access import READ_PERMISSIONS, AccessScope
from fhir_server.service.repository import WriteMethod
from fhir_server.storage.sql.common import Fragment
from fhir_server.storage.sql.compile import Compiler

_R = sql.Identifier("r")


def visible(scope: AccessScope | None, resource_type: str | None = None,
             permissions: frozenset[str] = READ_PERMISSIONS) -> Fragment | None:
    """The condition on a resource row ``r`` for ``permissions`` (None: no scope, or
    it admits every resource of ``resource_type``)."""
    if scope is None or (resource_type is not None
                         and not scope.restricts(resource_type, permissions)):
        return None
    reads = bool(permissions & READ_PERMISSIONS)
    return Compiler(scope.view(permissions), reads).visible(
        _R, None if resource_type is None else (resource_type,))


#: the permission each write method needs on the old and the new content
_WRITE_PERMISSION = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}
#: whether the resource (its live version, if any) passes a scope's condition
_ADMITTED = sql.SQL(
    "SELECT x.deleted OR EXISTS (SELECT 1 FROM resource r WHERE r.rid = x.rid AND {})"
    " FROM resource x WHERE x.resource_type = %s AND x.id = %s")


def scoped_statement(statement: sql.Composable, condition: Fragment | None,
                     params: Sequence[Any]) -> Fragment:
    """``statement`` (which reads ``resource``) restricted to rows passing
    ``condition`` (a ``visible`` one; None: unrestricted)."""
    if condition is None:
        return statement, list(params)
    return (sql.SQL("{} AND EXISTS (SELECT 1 FROM resource r WHERE r.resource_type ="
                    " %s AND r.id = %s AND {})").format(statement, condition[0]),
            [*params, params[0], params[1], *condition[1]])


def admitted_statement(scope: AccessScope | None, resource_type: str, id: str,
                       method: WriteMethod) -> Fragment | None:
    """Whether ``resource_type/id`` (absent, deleted, or passing the rules that grant
    ``method``'s permission) may be written; None when the scope admits every resource
    of the type for it (nothing to check)."""
    permission = frozenset(_WRITE_PERMISSION[method])
    if scope is None or not scope.restricts(resource_type, permission):
        return None
    check = visible(scope, None, permission)
    assert check is not None
    return _ADMITTED.format(check[0]), [*check[1], resource_type, id]
