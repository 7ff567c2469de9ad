"""The importer's idempotency rules and file handling (no database needed)."""

from __future__ import annotations

import gzip
from pathlib import Path

from fhir_server.importer.files import LAST_PHASE, discover, estimate, ndjson_chunks
from fhir_server.importer.prepare import content_id, prepare_bundle, resource_id


def test_posts_without_if_none_exist_become_puts_to_stable_ids() -> None:
    uid = "0b0e5c0e-1111-4222-8333-444455556666"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{uid}", "resource": {"resourceType": "Patient", "id": "x"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "SearchParameter", "id": "own-id"},
         "request": {"method": "POST", "url": "SearchParameter"}},
        {"resource": {"resourceType": "Basic", "code": {"text": "no id"}},
         "request": {"method": "POST", "url": "Basic"}},
        {"fullUrl": "urn:uuid:0b0e5c0e-0000-4000-8000-000000000000",
         "resource": {"resourceType": "Organization"},
         "request": {"method": "POST", "url": "Organization", "ifNoneExist": "name=A"}},
        {"resource": {"resourceType": "Patient", "id": "p"},
         "request": {"method": "PUT", "url": "Patient/p"}},
    ]}
    assert prepare_bundle(bundle) == 3
    requests = [e["request"] for e in bundle["entry"]]
    derived = content_id({"resourceType": "Basic", "code": {"text": "no id"}})
    assert requests[:3] == [{"method": "PUT", "url": f"Patient/{uid}"},
                            {"method": "PUT", "url": "SearchParameter/own-id"},
                            {"method": "PUT", "url": f"Basic/{derived}"}]
    assert bundle["entry"][0]["resource"]["id"] == uid
    assert bundle["entry"][2]["resource"]["id"] == derived
    assert requests[3]["method"] == "POST"  # conditional creates stay
    assert requests[4] == {"method": "PUT", "url": "Patient/p"}


def test_ids_of_upserted_resources() -> None:
    assert resource_id({"resourceType": "Patient", "id": "a"}) == "a"
    assert resource_id({"resourceType": "Patient"}, "urn:uuid:abc-1") == "abc-1"
    first = resource_id({"resourceType": "Patient", "gender": "male", "active": True})
    again = resource_id({"active": True, "resourceType": "Patient", "gender": "male"})
    other = resource_id({"resourceType": "Patient", "gender": "female", "active": True})
    assert first == again != other
    assert len(first) == 36


def test_discovery_phases_estimates_and_chunks(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "patient.json").write_text(
        '{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}},'
        ' {"resource": {"resourceType": "Observation"}}]}')
    (tmp_path / "hospitalInformation1.json").write_text("{}")
    (tmp_path / "practitionerInformation1.json").write_text("{}")
    (tmp_path / "sub" / "lines.ndjson").write_text("{}\n{}\n{}")
    with gzip.open(tmp_path / "sub" / "more.ndjson.gz", "wt") as f:
        f.write("{}\n" * 5)
    (tmp_path / "notes.csv").write_text("x")
    found, problems = discover([tmp_path, tmp_path / "patient.json", tmp_path / "x.txt"])
    assert problems == [(str(tmp_path / "x.txt"), "no such file or directory")]
    assert len(found) == 5  # patient.json, named twice, once
    phases = {f.path.name: f.phase for f in found}
    assert phases == {"hospitalInformation1.json": 0, "practitionerInformation1.json": 1,
                      "patient.json": LAST_PHASE, "lines.ndjson": LAST_PHASE,
                      "more.ndjson.gz": LAST_PHASE}
    by_name = {f.path.name: f for f in found}
    assert estimate(by_name["patient.json"]) == 2
    assert estimate(by_name["lines.ndjson"]) == 3
    assert estimate(by_name["more.ndjson.gz"]) == 5
    chunks = list(ndjson_chunks(by_name["more.ndjson.gz"], 7, chunk_lines=2))
    assert [c.item_id for c in chunks] == [7, 8, 9]
    assert [[n for n, _ in c.lines] for c in chunks] == [[1, 2], [3, 4], [5]]
    last = list(ndjson_chunks(by_name["lines.ndjson"], 0))
    assert last[0].lines == [(1, b"{}"), (2, b"{}"), (3, b"{}")]
