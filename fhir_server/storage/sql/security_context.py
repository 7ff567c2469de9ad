"""Binary.securityContext as SQL: who may read the resource it names may read the Binary.

Applied wherever the storage applies a reader's scope (searches, history, includes,
chain hops), so that a Binary is reachable the same way on every path, not only by id.
"""

from __future__ import annotations

from psycopg import sql

from fhir_server.storage.sql.common import Fragment

BINARY = "Binary"


def through_security_context(res: sql.Composable, context: sql.Identifier,
                             admitted: Fragment) -> Fragment:
    """Row ``res`` is a Binary whose securityContext is a live resource (alias
    ``context``) passing ``admitted``, the scope's rules on ``context``."""
    reference = sql.SQL("({}.content #>> '{{securityContext,reference}}')").format(res)
    return sql.SQL(
        "({res}.resource_type = %s AND EXISTS (SELECT 1 FROM resource {c}"
        " WHERE {c}.resource_type = split_part({ref}, '/', 1)"
        " AND {c}.id = split_part({ref}, '/', 2) AND NOT {c}.deleted AND {rules}))"
    ).format(res=res, c=context, ref=reference, rules=admitted[0]), [BINARY, *admitted[1]]
