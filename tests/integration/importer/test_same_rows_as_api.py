"""What the importer stores equals what the HTTP API stores for the same requests.

One database is filled through a real ``fhir-server serve`` (``POST /fhir`` with the
Bundles as the importer rewrites them, ``PUT /fhir/Type/id`` with the NDJSON lines), the
other by ``fhir-server import``; then every resource's content (without the
server-assigned meta fields), its history methods and all of its ``idx_*`` rows are
compared by (type, id).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from fhir_server.api.body import parse_json_exact
from fhir_server.importer.prepare import prepare_bundle, resource_id
from fhir_server.service.write import dumps
from tests.conftest import start_server
from tests.data import us_core_bundles
from tests.integration.importer.conftest import run_import

HEADERS = {"Content-Type": "application/fhir+json"}
#: The patient Bundles (the sixth defines a SearchParameter, which would change the
#: index rows of later Conditions at a moment that differs between the two servers).
BUNDLES = us_core_bundles("uscore_bundle_patient_*.json")
LINES = [
    {"resourceType": "Patient", "id": "dup", "gender": "female"},
    {"resourceType": "Observation", "id": "q1", "status": "final", "code": {"coding": [
        {"system": "http://loinc.org", "code": "29463-7"}]},
     "subject": {"reference": "Patient/dup"}, "effectiveDateTime": "2020-02-29T10:00:00+01:00",
     "valueQuantity": {"value": 70.50, "unit": "kg", "system": "http://unitsofmeasure.org",
                       "code": "kg"}, "referenceRange": [{"low": {"value": 1e-3}}]},
    {"resourceType": "Patient", "id": "dup", "gender": "male",
     "name": [{"family": "Ünïcode", "given": ["Zoë"]}]},
    {"resourceType": "Patient", "name": [{"family": "NoId"}], "birthDate": "1999"},
    {"resourceType": "Observation", "id": "q1", "status": "final", "code": {"coding": [
        {"system": "http://loinc.org", "code": "29463-7"}]},
     "subject": {"reference": "Patient/dup"}, "effectiveDateTime": "2020-02-29T10:00:00+01:00",
     "valueQuantity": {"value": 70.50, "unit": "kg", "system": "http://unitsofmeasure.org",
                       "code": "kg"}, "referenceRange": [{"low": {"value": 1e-3}}]},
]
_TABLES = ("token", "string", "date", "number", "quantity", "reference", "uri", "composite")


def _through_api(base: str, ndjson: list[bytes]) -> None:
    with httpx.Client(base_url=f"{base}/fhir", timeout=60) as client:
        for path in BUNDLES:
            bundle = parse_json_exact(path.read_bytes(), 64)
            prepare_bundle(bundle)
            response = client.post("", content=dumps(bundle), headers=HEADERS)
            assert response.status_code == 200, response.text
        # The importer writes each id once: its last copy (earlier ones are superseded).
        last = {(b["resourceType"], resource_id(b)): n
                for n, b in enumerate(map(orjson.loads, ndjson))}
        for number, line in enumerate(ndjson):
            body = orjson.loads(line)
            rid = resource_id(body)
            if last[(body["resourceType"], rid)] != number:
                continue
            if "id" not in body:  # the importer's derived id, sent as a client would
                line = orjson.dumps({**body, "id": rid})
            response = client.put(f"/{body['resourceType']}/{rid}", content=line,
                                  headers=HEADERS)
            assert response.status_code in (200, 201), response.text


def _snapshot(url: str) -> dict[tuple[Any, ...], Any]:
    out: dict[tuple[Any, ...], Any] = {}
    with psycopg.connect(url) as conn:
        for rtype, rid, content, meta in conn.execute(
                "SELECT resource_type, id, (content - 'meta')::text,"
                " ((content -> 'meta') - 'versionId' - 'lastUpdated')::text FROM resource"):
            out[(rtype, rid, "content")] = (content, meta)
        for rtype, rid, version, method in conn.execute(
                "SELECT resource_type, id, version_id, method FROM resource_history"):
            out[(rtype, rid, "history", version)] = method
        for table in _TABLES:
            columns = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                " AND column_name <> 'rid' ORDER BY ordinal_position", (f"idx_{table}",))]
            select = ", ".join(f"x.{c}::text" for c in columns)
            for row in conn.execute(f"SELECT r.resource_type, r.id, {select} FROM idx_{table} x"
                                    " JOIN resource r USING (rid)".encode()):
                out.setdefault((row[0], row[1], table), []).append(row[2:])
    for value in out.values():
        if isinstance(value, list):
            value.sort(key=repr)
    return out


def test_imported_rows_equal_the_rows_the_api_writes(make_db: Callable[..., str],
                                                     tmp_path: Path) -> None:
    ndjson = [json.dumps(line).encode() for line in LINES]
    api_url = make_db()
    proc, base = start_server(api_url, AUDIT="false")  # the importer records no events
    try:
        _through_api(base, ndjson)
    finally:
        proc.terminate()
        proc.wait(20)

    data = tmp_path / "data"
    data.mkdir()
    for path in BUNDLES:
        shutil.copy(path, data / path.name)
    (data / "lines.ndjson").write_bytes(b"\n".join(ndjson) + b"\n")
    import_url = make_db()
    # All lines in one work item; "dup" and "q1" appear twice, only the last copy counts.
    run = run_import(import_url, data, "--chunk-lines", "100", tmp_path=tmp_path)
    assert run.status == 0, run.stderr
    assert run.summary["problems"] == []
    assert run.summary["by_type"]["Patient"]["superseded"] == 1
    assert run.summary["by_type"]["Observation"]["superseded"] == 1

    api, imported = _snapshot(api_url), _snapshot(import_url)
    assert len(api) > 2000
    different = sorted(k for k in set(api) | set(imported) if api.get(k) != imported.get(k))
    assert different == [], [(k, api.get(k), imported.get(k)) for k in different[:3]]
