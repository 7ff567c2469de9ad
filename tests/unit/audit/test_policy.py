"""AuditEvents are append-only: changes are 405, creates and reads are not refused."""

from __future__ import annotations

import pytest

from fhir_server.audit import policy
from fhir_server.errors import MethodNotAllowed


@pytest.mark.parametrize("interaction", sorted(policy.CHANGES))
def test_changes_of_audit_events_are_405(interaction: str) -> None:
    with pytest.raises(MethodNotAllowed) as err:
        policy.check_change(interaction, {"resource_type": "AuditEvent", "id": "1"})
    assert err.value.status == 405
    assert err.value.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("interaction", ["create", "read", "search-type", "vread"])
def test_other_interactions_pass(interaction: str) -> None:
    policy.check_change(interaction, {"resource_type": "AuditEvent"})
    policy.check_change("delete", {"resource_type": "Patient", "id": "1"})


def test_capability_leaves_changes_out() -> None:
    assert policy.refused("AuditEvent") == policy.CHANGES
    assert policy.refused("Patient") == frozenset()
