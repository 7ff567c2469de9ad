"""The runbook's backup procedure round-trips: ``pg_dump`` to plain SQL, ``psql`` restore.

Runbook::

    pg_dump -h $PGHOST -U $PGUSER -d $PGDATABASE > backup.sql
    createdb -h $PGHOST -U $PGUSER restored
    psql -h $PGHOST -U $PGUSER -d restored -v ON_ERROR_STOP=1 < backup.sql

Data goes in through a running server (the US Core bundles as transactions, then
updates and deletes so that history has several versions), the dump is restored into
a fresh database on the same PostgreSQL, and then: every table (resources, history,
each ``idx_*`` table, migration history, jobs) has the same rows, and a server on the
restored database answers reads, searches and history with the same bytes.

Runs against the system PostgreSQL on 127.0.0.1:5432 (scratch databases ``ops_test_*``,
dropped afterwards), with the ``pg_dump``/``psql`` of the server's major version.
``fhir-server`` refusing a database whose migrations are ahead of its files is covered
by ``tests/integration/test_cli.py::test_serve_refuses_a_database_ahead_of_its_files``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from psycopg import sql

from tests.conftest import scratch_name, start_server
from tests.data import us_core_bundles
from tests.integration.ops.cluster import PG_BIN, stop_server

HOST, PORT, USER = "127.0.0.1", "5432", "postgres"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
# The same absolute base on both servers, so that links in bundles compare equal.
BASE_URL = "http://fhir.example.test/fhir"


def _url(dbname: str) -> str:
    return f"postgresql://{USER}@{HOST}:{PORT}/{dbname}"


def _system_major() -> int:
    try:
        with psycopg.connect(_url("postgres"), connect_timeout=3) as conn:
            return int(conn.info.server_version) // 10000
    except psycopg.OperationalError:
        pytest.skip(f"no PostgreSQL on {HOST}:{PORT}")


def _client_tool(name: str, major: int) -> str:
    """A ``pg_dump``/``psql`` of the server's major version (system first, then pgserver's)."""
    for candidate in (shutil.which(name), str(PG_BIN / name)):
        if not candidate or not Path(candidate).exists():
            continue
        out = subprocess.run([candidate, "--version"], capture_output=True, text=True,
                             check=False).stdout
        found = re.search(r"\) (\d+)", out)
        if found and int(found.group(1)) == major:
            return candidate
    pytest.skip(f"no {name} of major version {major}")


@pytest.fixture
def scratch() -> Iterator[tuple[str, str]]:
    """Two fresh databases on the system server: (source, restore target)."""
    _system_major()
    names = (scratch_name("ops_test_src"), scratch_name("ops_test_dst"))
    with psycopg.connect(_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(names[0])))
    try:
        yield names
    finally:
        with psycopg.connect(_url("postgres"), autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                             .format(sql.Identifier(name)))


def _load(client: httpx.Client) -> list[str]:
    """Post every US Core bundle as a transaction, then update and delete; return paths."""
    created: list[str] = []
    for path in us_core_bundles():
        r = client.post("", content=path.read_bytes(), headers=FHIR_JSON)
        assert r.status_code == 200, (path.name, r.text[:500])
        for entry in r.json()["entry"]:
            assert entry["response"]["status"][:3] in ("200", "201"), entry["response"]
            created.append(entry["response"]["location"].split("/_history")[0])
    # Versions and deletions, so that history is more than one version per resource.
    patient = client.get("Patient/85").json()
    for n in range(3):
        patient["gender"] = ("male", "female", "other")[n]
        r = client.put("Patient/85", content=orjson.dumps(patient), headers=FHIR_JSON)
        assert r.status_code == 200, r.text
    observations = [p for p in created if p.startswith("Observation/")]
    for observation in observations[:5]:
        assert client.delete(observation).status_code in (200, 204)
    patch = b'[{"op":"replace","path":"/status","value":"amended"}]'
    r = client.patch(observations[5], content=patch,
                     headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200, r.text
    r = client.put("Patient/ops-extra", content=b'{"resourceType":"Patient","id":"ops-extra",'
                   b'"name":[{"family":"Backup"}]}', headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return created


def _tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def _fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every table, and each sequence."""
    result: dict[str, tuple[int, str]] = {}
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET extra_float_digits = 3")
        for table in _tables(conn):
            count, digest = conn.execute(sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)),"
                " '') FROM {} t").format(sql.Identifier(table))).fetchone() or (0, "")
            result[table] = (count, digest)
        for (seq,) in conn.execute("SELECT sequencename FROM pg_sequences"
                                   " WHERE schemaname = 'public'").fetchall():
            last = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}")
                                .format(sql.Identifier(seq))).fetchone()
            result[f"sequence {seq}"] = (int(bool(last and last[1])), str(last and last[0]))
    return result


def _probes(created: list[str]) -> list[str]:
    """Reads, vreads, searches (with includes and paging) and history to compare."""
    # The first five Observations were deleted (410 on both sides; 200 is asserted).
    observation = [p for p in created if p.startswith("Observation/")][7]
    condition = next(p for p in created if p.startswith("Condition/"))
    return [
        "Patient/85", "Patient/355", "Patient/ops-extra", observation, condition,
        "Patient/85/_history/1", "Patient/85/_history/3",
        "Patient?_count=50", "Patient?gender=other", "Patient?name=Backup",
        "Observation?patient=Patient/85&_count=20&_sort=-_lastUpdated",
        "Observation?code=http://loinc.org|8867-4&_count=10",
        "Observation?status=amended",
        "Encounter?date=ge2010-01-01&_count=15&_sort=date,_id",
        "Condition?patient=Patient/355&_include=Condition:patient&_count=10",
        "Patient?_id=85&_revinclude=Encounter:patient",
        "Patient?_count=2&_total=accurate",
        "Patient/85/_history", "Observation/_history?_count=30", "_history?_count=40",
    ]


def _snapshot(base: str, probes: list[str]) -> dict[str, tuple[int, bytes, str | None]]:
    """Status, body and ETag of every probe, following one ``next`` link per bundle."""
    answers: dict[str, tuple[int, bytes, str | None]] = {}
    with httpx.Client(base_url=f"{base}/fhir", timeout=30) as client:
        for probe in probes:
            r = client.get(probe)
            answers[probe] = (r.status_code, r.content, r.headers.get("etag"))
            if r.status_code == 200 and r.json().get("resourceType") == "Bundle":
                nxt = [link["url"] for link in r.json().get("link", [])
                       if link["relation"] == "next"]
                if nxt:
                    follow = nxt[0].removeprefix(BASE_URL + "/")
                    page = client.get(follow)
                    answers[f"{probe} (next)"] = (page.status_code, page.content, None)
    return answers


def test_pg_dump_and_psql_restore_round_trip(scratch: tuple[str, str], tmp_path: Path) -> None:
    source, target = scratch
    major = _system_major()
    pg_dump, psql = _client_tool("pg_dump", major), _client_tool("psql", major)

    # AUDIT=false: the probes' own AuditEvents would make the answers before and after
    # the restore differ (system history lists them)
    proc, base = start_server(_url(source), FHIR_BASE_URL=BASE_URL, DB_POOL_MAX="4",
                              AUDIT="false")
    try:
        with httpx.Client(base_url=f"{base}/fhir", timeout=60) as client:
            created = _load(client)
        probes = _probes(created)
        before = _snapshot(base, probes)
        assert sum(probe.endswith("(next)") for probe in before) >= 4  # paging covered
        fingerprint = _fingerprint(_url(source))

        # The runbook, literally: plain SQL to stdout, restored with psql from stdin,
        # while the server keeps running.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        backup = tmp_path / "backup.sql"
        with backup.open("wb") as out:
            dumped = subprocess.run([pg_dump, "-h", HOST, "-p", PORT, "-U", USER, "-d", source],
                                    stdout=out, stderr=subprocess.PIPE, env=env, timeout=120,
                                    check=False)
        assert dumped.returncode == 0, dumped.stderr.decode()
        assert _fingerprint(_url(source)) == fingerprint, "the source changed while idle"
    finally:
        stop_server(proc)

    with psycopg.connect(_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
    with backup.open("rb") as inp:
        restored = subprocess.run([psql, "-h", HOST, "-p", PORT, "-U", USER, "-d", target,
                                   "-v", "ON_ERROR_STOP=1", "-q"], stdin=inp,
                                  capture_output=True, env=env, timeout=120, check=False)
    assert restored.returncode == 0, restored.stderr.decode()

    # Same tables, rows, checksums and sequence positions.
    after = _fingerprint(_url(target))
    assert sorted(after) == sorted(fingerprint)
    assert {"resource", "resource_history", "flyway_schema_history"} <= set(after)
    assert sum(1 for t in after if t.startswith("idx_")) >= 8
    for table, (count, digest) in fingerprint.items():
        assert after[table] == (count, digest), table
    assert fingerprint["resource"][0] > 800 and fingerprint["resource_history"][0] > 800
    assert fingerprint["idx_token"][0] > 1000

    # A server on the restored database starts (migrations up to date, checksums equal)
    # and answers every probe with the same bytes, then accepts new writes.
    proc, base = start_server(_url(target), FHIR_BASE_URL=BASE_URL, MIGRATE_ON_START="false",
                              AUDIT="false")
    try:
        ready = httpx.get(f"{base}/api/v1/ready", timeout=10).json()
        assert ready["migrations"] == "up to date"
        again = _snapshot(base, probes)
        assert sorted(again) == sorted(before)
        for probe, (status, body, etag) in before.items():
            assert status == 200, (probe, body[:300])
            assert again[probe] == (status, body, etag), probe
        with httpx.Client(base_url=f"{base}/fhir", timeout=30) as client:
            r = client.post("Patient", content=b'{"resourceType":"Patient"}', headers=FHIR_JSON)
            assert r.status_code == 201, r.text
            r = client.put("Patient/85", content=client.get("Patient/85").content,
                           headers=FHIR_JSON)
            assert r.status_code == 200, r.text
            found = client.get("Patient", params={"name": "Backup"}).json()
            assert [e["resource"]["id"] for e in found["entry"]] == ["ops-extra"]
    finally:
        stop_server(proc)
