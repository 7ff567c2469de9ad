"""Issue 8, import of real Synthea extracts: conditional creates keep their fullUrl uuid,
each id is written once per run (its last copy in file order), the summary counts what
was stored, and the tables written to are ANALYZEd."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.importer.conftest import run_import, scalar, stored_types

ORG = "5f1d9c3e-0000-4000-8000-0000000000a1"
LOC = "5f1d9c3e-0000-4000-8000-0000000000b1"
PAT = "5f1d9c3e-0000-4000-8000-0000000000c1"
IDENT = "https://github.com/synthetichealth/synthea|org-1"


def _org(name: str, uid: str = ORG, value: str = "org-1") -> dict[str, Any]:
    return {"resourceType": "Organization", "name": name, "identifier": [
        {"system": "https://github.com/synthetichealth/synthea", "value": value}]}


def _tx(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _write(folder: Path, name: str, value: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(value))
    return path


def _versions(url: str, rtype: str, rid: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM resource_history WHERE resource_type = %s"
                      " AND id = %s", rtype, rid))


def test_a_conditional_create_keeps_its_full_url_uuid_so_extracts_merge(
        make_db: Callable[..., str], tmp_path: Path) -> None:
    url = make_db()
    hospital = _write(tmp_path / "a", "hospitalInformation1.json", _tx(
        {"fullUrl": f"urn:uuid:{ORG}", "resource": _org("General"),
         "request": {"method": "POST", "url": "Organization",
                     "ifNoneExist": "identifier=" + IDENT}},
        {"fullUrl": f"urn:uuid:{LOC}", "resource": {
            "resourceType": "Location", "name": "Ward",
            "managingOrganization": {"reference": f"urn:uuid:{ORG}"}},
         "request": {"method": "POST", "url": "Location"}}))
    first = run_import(url, hospital, tmp_path=tmp_path)
    assert first.status == 0, first.stderr
    assert first.summary["problems"] == []
    assert first.summary["by_type"] == {"Organization": {"created": 1},
                                        "Location": {"created": 1}}
    assert scalar(url, "SELECT id FROM resource WHERE resource_type = 'Organization'") == ORG
    assert scalar(url, "SELECT content->'managingOrganization'->>'reference' FROM resource"
                  " WHERE id = %s", LOC) == f"Organization/{ORG}"

    # A second extract of the same world PUTs the uuid: the same resource, version 2.
    second = _write(tmp_path / "b", "patient.json", _tx(
        {"fullUrl": f"urn:uuid:{ORG}", "resource": {**_org("General Hospital"), "id": ORG},
         "request": {"method": "PUT", "url": f"Organization/{ORG}"}}))
    # and a patient file of the first extract refers to it by identifier.
    patient = _write(tmp_path / "c", "patient.json", _tx(
        {"fullUrl": f"urn:uuid:{PAT}", "resource": {
            "resourceType": "Patient",
            "managingOrganization": {"reference": "Organization?identifier=" + IDENT}},
         "request": {"method": "POST", "url": "Patient"}}))
    run = run_import(url, second, tmp_path=tmp_path)
    assert run.summary["by_type"] == {"Organization": {"updated": 1}}
    run = run_import(url, patient, tmp_path=tmp_path)
    assert run.status == 0, run.stderr
    assert run.summary["problems"] == []  # not "matches 2 Organization resources"
    assert stored_types(url) == {"Organization": 1, "Location": 1, "Patient": 1}
    assert _versions(url, "Organization", ORG) == 2
    assert scalar(url, "SELECT content->'managingOrganization'->>'reference' FROM resource"
                  " WHERE id = %s", PAT) == f"Organization/{ORG}"

    # The hospital file again: the conditional create finds the resource, nothing new.
    again = run_import(url, hospital, tmp_path=tmp_path)
    assert again.summary["by_type"] == {"Organization": {"found": 1},
                                        "Location": {"unchanged": 1}}
    assert scalar(url, "SELECT count(*) FROM resource_history") == 4


def test_each_id_is_written_once_per_run_its_last_copy_in_file_order(
        make_db: Callable[..., str], tmp_path: Path) -> None:
    url = make_db()
    data = tmp_path / "data"
    practitioner = {"resourceType": "Practitioner", "id": "pr-1"}
    # Three transaction files PUT Organization/o-1 with different content; a patient
    # of the first refers to its copy by fullUrl.
    for n, name in enumerate(("First", "Second", "Third"), 1):
        _write(data, f"extract-{n}.json", _tx(
            {"fullUrl": f"urn:uuid:{ORG[:-1]}{n}", "resource": {
                "resourceType": "Organization", "id": "o-1", "name": name},
             "request": {"method": "PUT", "url": "Organization/o-1"}},
            {"fullUrl": f"urn:uuid:{PAT[:-1]}{n}", "resource": {
                "resourceType": "Patient",
                "managingOrganization": {"reference": f"urn:uuid:{ORG[:-1]}{n}"}},
             "request": {"method": "POST", "url": "Patient"}},
            # Conditional creates of one uuid with different content in each file.
            {"fullUrl": f"urn:uuid:{LOC}", "resource": {
                "resourceType": "Location", "name": name,
                "identifier": [{"system": "urn:loc", "value": "l-1"}]},
             "request": {"method": "POST", "url": "Location",
                         "ifNoneExist": "identifier=urn:loc|l-1"}}))
    # NDJSON repeats a Practitioner, a collection Bundle has the last copy.
    (data / "lines.ndjson").write_text("\n".join(json.dumps(r) for r in (
        {**practitioner, "gender": "male"}, {"resourceType": "Patient", "id": "p-9"},
        {**practitioner, "gender": "female"})) + "\n")
    _write(data, "z-collection.json", {"resourceType": "Bundle", "type": "collection",
                                       "entry": [{"resource": {**practitioner,
                                                               "gender": "other"}}]})
    run = run_import(url, data, tmp_path=tmp_path)
    assert run.status == 0, run.stderr
    assert run.summary["problems"] == []
    assert run.summary["by_type"] == {
        "Organization": {"created": 1, "superseded": 2},
        "Location": {"created": 1, "superseded": 2},
        "Patient": {"created": 4},
        "Practitioner": {"created": 1, "superseded": 2}}
    assert run.summary["superseded"] == 6
    assert run.summary["superseded_resources"] == 3
    assert "the last copy in file order" in run.stdout
    assert run.summary["resources"] == 7 == scalar(url, "SELECT count(*) FROM resource")
    assert scalar(url, "SELECT count(*) FROM resource_history") == 7
    assert scalar(url, "SELECT content->>'name' FROM resource WHERE id = 'o-1'") == "Third"
    assert scalar(url, "SELECT content->>'name' FROM resource WHERE id = %s", LOC) == "Third"
    assert scalar(url, "SELECT content->>'gender' FROM resource WHERE id = 'pr-1'") == "other"
    # References to a superseded copy's fullUrl point to the id its last copy wrote.
    assert scalar(url, "SELECT array_agg(DISTINCT content->'managingOrganization'->>"
                  "'reference') FROM resource WHERE resource_type = 'Patient'"
                  " AND content ? 'managingOrganization'") == ["Organization/o-1"]

    again = run_import(url, data, tmp_path=tmp_path)
    assert again.status == 0, again.stderr
    # Every conditional create now finds the Location (a copy that matches is "found").
    assert again.summary["by_type"] == {
        "Organization": {"unchanged": 1, "superseded": 2}, "Location": {"found": 3},
        "Patient": {"unchanged": 4}, "Practitioner": {"unchanged": 1, "superseded": 2}}
    assert scalar(url, "SELECT count(*) FROM resource_history") == 7
    assert again.summary["analyzed"] == []  # nothing written


def test_the_summary_counts_what_was_stored(make_db: Callable[..., str],
                                            tmp_path: Path) -> None:
    url = make_db()
    data = tmp_path / "data"
    bad = _tx(*({"resource": {"resourceType": "Patient", "id": f"bad-{n}"},
                 "request": {"method": "PUT", "url": f"Patient/bad-{n}"}} for n in range(3)),
              {"resource": {"resourceType": "Observation", "id": "bad-obs", "status": "no",
                            "code": {"text": "x"}},
               "request": {"method": "PUT", "url": "Observation/bad-obs"}})
    _write(data, "bad.json", bad)
    _write(data, "good.json", _tx(
        {"resource": {"resourceType": "Patient", "id": "good-1"},
         "request": {"method": "PUT", "url": "Patient/good-1"}}))
    _write(data, "batch.json", _tx(
        {"resource": {"resourceType": "Patient", "id": "b-1"},
         "request": {"method": "PUT", "url": "Patient/b-1"}},
        {"resource": {"resourceType": "Patient", "id": "b-2", "gender": "neither"},
         "request": {"method": "PUT", "url": "Patient/b-2"}}, kind="batch"))
    run = run_import(url, data, tmp_path=tmp_path)
    assert run.status == 0, run.stderr
    assert run.summary["resources"] == 2 == scalar(url, "SELECT count(*) FROM resource")
    assert run.summary["read"] == 7
    assert run.summary["failed"] == 5  # the 4 entries of bad.json, entry[1] of the batch
    assert run.summary["outcomes"] == {"created": 2}
    assert "2 resources stored (2 created, 0 updated, 0 unchanged); 5 failed" in run.stdout


def test_the_tables_written_to_are_analyzed(make_db: Callable[..., str],
                                            tmp_path: Path) -> None:
    url = make_db()
    lines = "\n".join(json.dumps({"resourceType": "Patient", "id": f"p-{n}",
                                  "gender": "female"}) for n in range(40))
    (tmp_path / "p.ndjson").write_text(lines + "\n")
    assert scalar(url, "SELECT reltuples FROM pg_class WHERE relname = 'resource'") == -1
    run = run_import(url, tmp_path / "p.ndjson", tmp_path=tmp_path)
    assert run.status == 0, run.stderr
    assert {"resource", "resource_history", "idx_token"} <= set(run.summary["analyzed"])
    assert "idx_quantity" not in run.summary["analyzed"]  # not written to
    assert "ANALYZE of" in run.stdout
    for table in ("resource", "resource_history"):
        assert scalar(url, "SELECT reltuples FROM pg_class WHERE relname = %s", table) == 40
    assert scalar(url, "SELECT reltuples FROM pg_class WHERE relname = 'idx_token'") == \
        scalar(url, "SELECT count(*) FROM idx_token")
    assert scalar(url, "SELECT reltuples FROM pg_class WHERE relname = 'idx_quantity'") == -1
