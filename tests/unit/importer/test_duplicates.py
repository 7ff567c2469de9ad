"""Which copies ``duplicates.scan`` supersedes: the last in import order is kept."""

from __future__ import annotations

import json
from pathlib import Path

from fhir_server.importer.duplicates import scan
from fhir_server.importer.files import discover
from fhir_server.importer.prepare import entry_key, prepare_bundle

UID = "urn:uuid:5f1d9c3e-0000-4000-8000-000000000001"


def _put(rtype: str, rid: str) -> dict[str, object]:
    return {"resource": {"resourceType": rtype, "id": rid},
            "request": {"method": "PUT", "url": f"{rtype}/{rid}"}}


def test_entry_key_is_the_same_before_and_after_prepare() -> None:
    entries = [
        {"fullUrl": UID, "resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "id": "own"},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": UID, "resource": {"resourceType": "Organization"},
         "request": {"method": "POST", "url": "Organization", "ifNoneExist": "identifier=x"}},
        {"resource": {"resourceType": "Organization"},
         "request": {"method": "POST", "url": "Organization", "ifNoneExist": "identifier=x"}},
        {"resource": {"resourceType": "Patient"},
         "request": {"method": "PUT", "url": "Patient?identifier=x"}},
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    before = [entry_key(e) for e in entries]
    prepare_bundle(bundle)
    assert [entry_key(e) for e in bundle["entry"]] == before == [
        ("Patient", UID[9:]), ("Patient", "own"), ("Organization", UID[9:]), None, None]


def test_scan_supersedes_every_copy_but_the_last_in_import_order(tmp_path: Path) -> None:
    # hospitalInformation files are imported first (phase 0), before a.json.
    (tmp_path / "hospitalInformation1.json").write_text(json.dumps(
        {"resourceType": "Bundle", "type": "transaction", "entry": [_put("Organization", "o")]}))
    (tmp_path / "a.json").write_text(json.dumps(
        {"resourceType": "Bundle", "type": "transaction",
         "entry": [_put("Patient", "p"), _put("Organization", "o"), _put("Patient", "p")]}))
    (tmp_path / "b.ndjson").write_text("\n".join(json.dumps(r) for r in (
        {"resourceType": "Patient", "id": "q"}, {"resourceType": "Patient", "id": "q"},
        {"resourceType": "Patient"}, {"resourceType": "Patient"})) + "\n")
    found, problems = discover([tmp_path])
    assert problems == []
    duplicates = scan(found)
    # a.json keeps both copies of Patient/p (the transaction rejects them, as the API
    # would); the ids derived from content are not tracked (equal copies are unchanged).
    assert duplicates.superseded == {tmp_path / "hospitalInformation1.json": {0},
                                     tmp_path / "b.ndjson": {1}}
    assert (duplicates.copies, duplicates.resources) == (2, 2)
