"""The ``requires`` marker's reading of a CapabilityStatement (no server needed)."""

from __future__ import annotations

import pytest

from tests.conformance.capability import missing, unmet

STATEMENT = {
    "format": ["application/fhir+json"], "patchFormat": ["application/json-patch+json"],
    "rest": [{"mode": "server", "interaction": [{"code": "transaction"}],
              "searchParam": [{"name": "_id"}],
              "operation": [{"name": "export"}],
              "resource": [{"type": "Patient", "interaction": [{"code": "read"}],
                            "searchParam": [{"name": "name"}],
                            "operation": [{"name": "everything"}]},
                           {"type": "Observation", "interaction": [{"code": "create"}]}]}]}


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("operation", "export", None),
    ("operation", "everything", None),
    ("operation", ("Patient", "everything"), None),
    ("operation", ("Observation", "everything"), "the operation $everything on Observation"),
    ("operation", ("Observation", "export"), "the operation $export on Observation"),
    ("operation", "validate", "the operation $validate"),
    ("interaction", "transaction", None),
    ("interaction", "create", None),
    ("interaction", ("Patient", "create"), "the interaction create on Patient"),
    ("search", ("Patient", "_id"), None),
    ("search", ("Patient", "_text"), "the search parameter _text on Patient"),
    ("format", "application/fhir+xml", "the format 'application/fhir+xml'"),
    ("patch_format", "application/json-patch+json", None),
])
def test_missing(kind: str, value: str | tuple[str, str], expected: str | None) -> None:
    assert missing(STATEMENT, kind, value) == expected


def test_unmet_lists_every_miss() -> None:
    assert unmet(STATEMENT, {"operation": ["export", "validate"],
                             "format": "application/fhir+json"}) == [
        "the operation $validate"]
    with pytest.raises(ValueError, match="requires"):
        missing(STATEMENT, "colour", "red")
