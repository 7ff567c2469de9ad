"""AuditEvents are append-only over the API.

An audit trail that its subjects could edit would prove nothing, so update, patch and
delete of an AuditEvent (plain or conditional, over HTTP or as a Bundle entry) answer
405, whatever the token's scopes, and the CapabilityStatement does not offer them.
Creating one stays possible (with a scope naming AuditEvent: wildcards never reach it):
an IHE ATNA / BALP audit repository accepts events recorded by other systems, and the
server's own event of that create records who sent it.
"""

from __future__ import annotations

from fhir_server.errors import MethodNotAllowed

#: types whose resources are never changed or deleted through the API
APPEND_ONLY = frozenset({"AuditEvent"})
#: the route interactions that change or delete a resource
CHANGES = frozenset({"update", "patch", "delete", "conditional-update",
                     "conditional-patch", "conditional-delete"})


def refused(resource_type: str) -> frozenset[str]:
    """The interactions refused on ``resource_type`` (the CapabilityStatement leaves
    them out)."""
    return CHANGES if resource_type in APPEND_ONLY else frozenset()


def check_change(interaction: str, params: dict[str, str]) -> None:
    """MethodNotAllowed for a change or deletion of an append-only resource."""
    rtype = params.get("resource_type")
    if rtype in APPEND_ONLY and interaction in CHANGES:
        allow = "GET, HEAD" if "id" in params else "GET, HEAD, POST"
        raise MethodNotAllowed(f"{rtype} resources are the audit trail: they cannot be "
                               f"updated, patched or deleted", headers={"Allow": allow})
