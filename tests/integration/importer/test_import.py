"""``fhir-server import`` against a real database: Bundles, NDJSON, idempotency, errors."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fhir_server.importer.prepare import content_id
from tests.data import US_CORE_BUNDLES
from tests.integration.importer.conftest import run_import, scalar, stored_types


def _bundle_types(folder: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in folder.glob("*.json"):
        bundle = json.loads(path.read_bytes())
        counts.update(e["resource"]["resourceType"] for e in bundle["entry"])
    return counts


def test_us_core_bundles_load_and_a_second_run_changes_nothing(
        make_db: Callable[..., str], tmp_path: Path) -> None:
    url = make_db()
    first = run_import(url, US_CORE_BUNDLES, tmp_path=tmp_path)
    assert first.status == 0, first.stderr
    expected = _bundle_types(US_CORE_BUNDLES)
    assert stored_types(url) == expected
    assert first.summary["problems"] == []
    assert first.summary["outcomes"] == {"created": sum(expected.values())}
    assert first.summary["resources"] == sum(expected.values())
    by_type = {t: sum(o.values()) for t, o in first.summary["by_type"].items()}
    assert by_type == dict(expected)
    # A fresh database grew whole: its indexes were rebuilt packed (repack.py), valid,
    # with no leftover REINDEX CONCURRENTLY copy.
    assert {"resource", "resource_history", "idx_token", "idx_reference"} <= set(
        first.summary["reindexed"])
    assert scalar(url, "SELECT count(*) FROM pg_index x JOIN pg_class i ON"
                       " i.oid = x.indexrelid WHERE NOT x.indisvalid"
                       " OR strpos(i.relname, 'ccnew') > 0") == 0
    history = scalar(url, "SELECT count(*) FROM resource_history")
    index_rows = scalar(url, "SELECT count(*) FROM idx_token")

    second = run_import(url, US_CORE_BUNDLES, tmp_path=tmp_path)
    assert second.status == 0, second.stderr
    assert set(second.summary["outcomes"]) <= {"unchanged", "found"}
    assert second.summary["reindexed"] == []  # nothing grew
    assert sum(second.summary["outcomes"].values()) == sum(expected.values())
    assert scalar(url, "SELECT count(*) FROM resource_history") == history
    assert scalar(url, "SELECT count(*) FROM idx_token") == index_rows
    assert stored_types(url) == expected
    assert "unchanged" in second.stdout  # the summary table


def _ndjson_files(folder: Path) -> tuple[Path, Path, dict[str, Any]]:
    """a.ndjson: 5 good lines, a bad line (4), an invalid resource (6), a blank line,
    a resource without id (8); b.ndjson.gz: a good line, a non-resource (2), an
    unknown type (3)."""
    no_id = {"resourceType": "Patient", "name": [{"family": "Without-Id"}]}
    lines = [
        json.dumps({"resourceType": "Patient", "id": "nd-1", "gender": "female"}),
        json.dumps({"resourceType": "Patient", "id": "nd-2", "birthDate": "1970-01-01"}),
        json.dumps({"resourceType": "Observation", "id": "nd-3", "status": "final",
                    "code": {"text": "weight"}, "subject": {"reference": "Patient/nd-1"},
                    "valueQuantity": {"value": 70.50, "unit": "kg"}}),
        '{"resourceType": "Patient", "id": "broken", ',
        json.dumps({"resourceType": "Organization", "id": "nd-4", "name": "Clinic"}),
        json.dumps({"resourceType": "Observation", "id": "nd-bad", "status": "nope",
                    "code": {"text": "x"}}),
        "",
        json.dumps(no_id),
        json.dumps({"resourceType": "Practitioner", "id": "nd-5"}),
    ]
    a = folder / "a.ndjson"
    a.write_text("\n".join(lines) + "\n")
    b = folder / "b.ndjson.gz"
    with gzip.open(b, "wt") as f:
        f.write(json.dumps({"resourceType": "Patient", "id": "gz-1"}) + "\n[1, 2]\n"
                + json.dumps({"resourceType": "NoSuchType", "id": "x"}) + "\n")
    return a, b, no_id


def test_ndjson_bad_lines_are_reported_with_file_and_line_and_skipped(
        make_db: Callable[..., str], tmp_path: Path) -> None:
    url = make_db()
    data = tmp_path / "data"
    data.mkdir()
    a, b, no_id = _ndjson_files(data)
    run = run_import(url, data, tmp_path=tmp_path)
    assert run.status == 0, run.stderr
    assert sorted(run.locations) == sorted([f"{a}:4", f"{a}:6", f"{b}:2", f"{b}:3"])
    problems = {p["location"]: p for p in run.summary["problems"]}
    assert problems[f"{a}:4"]["kind"] == "invalid JSON"
    assert problems[f"{a}:6"]["kind"] == "422 invalid resource"
    assert "nope" in problems[f"{a}:6"]["message"]
    assert problems[f"{b}:3"]["kind"] == "404 not found"
    assert f"{a}:4" in run.stdout and f"{a}:6" in run.stdout
    derived = content_id(no_id)
    assert scalar(url, "SELECT count(*) FROM resource") == 7
    assert scalar(url, "SELECT count(*) FROM resource WHERE resource_type = 'Patient'"
                  " AND id = ANY(%s)", ["nd-1", "nd-2", "gz-1", derived]) == 4
    assert scalar(url, "SELECT content->'valueQuantity'->>'value' FROM resource"
                  " WHERE id = 'nd-3'") == "70.5"
    assert run.summary["outcomes"] == {"created": 7}

    again = run_import(url, data, tmp_path=tmp_path)
    assert again.status == 0
    assert again.summary["outcomes"] == {"unchanged": 7}
    assert scalar(url, "SELECT count(*) FROM resource_history") == 7


def test_strict_fails_the_run(make_db: Callable[..., str], tmp_path: Path) -> None:
    url = make_db()
    _ndjson_files(tmp_path)
    run = run_import(url, tmp_path / "a.ndjson", "--strict", tmp_path=tmp_path)
    assert run.status == 1
    assert run.summary["stopped_early"] is True
    assert run.summary["problems"]


def _entry(resource: dict[str, Any], method: str = "POST", url: str | None = None,
           full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"resource": resource, "request": {
        "method": method, "url": url or resource["resourceType"], **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def test_a_failing_transaction_skips_its_file_and_a_batch_keeps_its_good_entries(
        make_db: Callable[..., str], tmp_path: Path) -> None:
    url = make_db()
    patient = "urn:uuid:5f1d9c3e-0000-4000-8000-000000000001"
    bad = {"resourceType": "Bundle", "type": "transaction", "entry": [
        _entry({"resourceType": "Patient", "gender": "male"}, full_url=patient),
        _entry({"resourceType": "Observation", "status": "wrong", "code": {"text": "x"},
                "subject": {"reference": patient}})]}
    good = {"resourceType": "Bundle", "type": "transaction", "entry": [
        _entry({"resourceType": "Organization", "name": "A",
                "identifier": [{"system": "urn:s", "value": "a"}]},
               ifNoneExist="identifier=urn:s|a"),
        _entry({"resourceType": "Patient", "id": "p1",
                "managingOrganization": {"reference": "Organization?identifier=urn:s|a"}},
               "PUT", "Patient/p1")]}
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        _entry({"resourceType": "Patient", "id": "b1"}, "PUT", "Patient/b1"),
        _entry({"resourceType": "Patient", "id": "b2", "gender": "neither"}, "PUT",
               "Patient/b2")]}
    data = tmp_path / "data"
    data.mkdir()
    for name, value in (("bad", bad), ("good", good), ("batch", batch)):
        (data / f"{name}.json").write_text(json.dumps(value))
    (data / "broken.json").write_text("{")
    run = run_import(url, data, tmp_path=tmp_path)
    assert run.status == 0, run.stderr
    problems = {p["location"]: p["message"] for p in run.summary["problems"]}
    assert set(problems) == {str(data / "bad.json"), f"{data / 'batch.json'}: entry[1]",
                             str(data / "broken.json")}
    assert problems[str(data / "bad.json")].startswith("entry[1]")
    # Nothing of the failed transaction, everything else.
    assert scalar(url, "SELECT count(*) FROM resource WHERE resource_type = 'Observation'") == 0
    assert scalar(url, "SELECT count(*) FROM resource WHERE id IN ('p1', 'b1')") == 2
    organization = scalar(url, "SELECT id FROM resource WHERE resource_type = 'Organization'")
    assert scalar(url, "SELECT content->'managingOrganization'->>'reference' FROM resource"
                  " WHERE id = 'p1'") == f"Organization/{organization}"
    again = run_import(url, data / "good.json", data / "batch.json", tmp_path=tmp_path)
    assert again.summary["by_type"] == {"Organization": {"found": 1},
                                        "Patient": {"unchanged": 2}}


def test_a_transaction_whose_conditional_reference_is_not_there_yet_is_retried(
        make_db: Callable[..., str], tmp_path: Path) -> None:
    url = make_db()
    patient = {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(
        {"resourceType": "Patient", "id": "late",
         "managingOrganization": {"reference": "Organization?identifier=urn:s|z"}},
        "PUT", "Patient/late")]}
    organization = {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(
        {"resourceType": "Organization", "identifier": [{"system": "urn:s", "value": "z"}]},
        ifNoneExist="identifier=urn:s|z")]}
    data = tmp_path / "data"
    data.mkdir()
    (data / "a-patient.json").write_text(json.dumps(patient))  # runs first, fails: 412
    (data / "z-organization.json").write_text(json.dumps(organization))
    run = run_import(url, data, "--workers", "1", "--concurrency", "1", tmp_path=tmp_path)
    assert run.status == 0, run.stderr
    assert run.summary["problems"] == []
    assert run.summary["outcomes"] == {"created": 2}
    organization_id = scalar(url, "SELECT id FROM resource WHERE resource_type = 'Organization'")
    assert scalar(url, "SELECT content->'managingOrganization'->>'reference' FROM resource"
                  " WHERE id = 'late'") == f"Organization/{organization_id}"


def test_refuses_a_database_with_pending_migrations(make_db: Callable[..., str],
                                                     tmp_path: Path) -> None:
    url = make_db(False)
    run = run_import(url, US_CORE_BUNDLES, tmp_path=tmp_path)
    assert run.status == 1
    assert "fhir-server migrate" in run.stderr
    assert scalar(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'resource'") == 0


def test_nothing_to_import_is_an_error(make_db: Callable[..., str], tmp_path: Path) -> None:
    url = make_db()
    (tmp_path / "notes.txt").write_text("hello")
    run = run_import(url, tmp_path, tmp_path / "missing.ndjson", tmp_path=tmp_path)
    assert run.status == 1
    assert "missing.ndjson: no such file or directory" in run.stderr
    assert "nothing to import" in run.stderr
