"""The ``fhir-server`` command against real databases (external and embedded)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

from tests.conftest import ROOT, _free_port, start_server


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("PG") and k != "DATABASE_URL"}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "fhir_server.cli", *args], env=environ,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


# ``scratch_url`` (tests/conftest.py): an empty database, dropped after the test.


def test_migrate_and_info(scratch_url: str) -> None:
    pending = _cli("migrate", "--info", DATABASE_URL=scratch_url)
    assert pending.returncode == 0, pending.stderr
    assert "Pending" in pending.stdout and "| init" in pending.stdout
    applied = _cli("migrate", DATABASE_URL=scratch_url, LOG_FORMAT="text")
    assert applied.returncode == 0, applied.stderr
    assert "V1__init.sql" in applied.stderr
    info = _cli("migrate", "--info", DATABASE_URL=scratch_url)
    assert "Success" in info.stdout and "Pending" not in info.stdout
    with psycopg.connect(scratch_url) as conn:
        row = conn.execute("SELECT version, description, type, script, success"
                           " FROM flyway_schema_history").fetchone()
    assert row == ("1", "init", "SQL", "V1__init.sql", True)


def test_serve_refuses_a_database_ahead_of_its_files(scratch_url: str) -> None:
    assert _cli("migrate", DATABASE_URL=scratch_url).returncode == 0
    with psycopg.connect(scratch_url) as conn:
        conn.execute(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type,"
            " script, checksum, installed_by, execution_time, success)"
            " VALUES (999, '999', 'from the future', 'SQL', 'V999__from_the_future.sql', 1,"
            " 'test', 1, true)")
        # The newer migration says older code cannot run on it (a "contract" step).
        conn.execute("UPDATE schema_compatibility SET oldest_compatible_code = '999'")
    refused = _cli("serve", "--port", str(_free_port()), DATABASE_URL=scratch_url,
                   LOG_FORMAT="text")
    assert refused.returncode == 1
    assert "ahead" in refused.stderr


def _add_future_migration(url: str, *, compatible: bool) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type,"
            " script, checksum, installed_by, execution_time, success)"
            " VALUES (999, '999', 'from the future', 'SQL', 'V999__from_the_future.sql', 1,"
            " 'test', 1, true)")
        if not compatible:
            conn.execute("UPDATE schema_compatibility SET oldest_compatible_code = '999'")


def test_migrate_allow_compatible_ahead_passes_a_rolled_back_release(scratch_url: str
                                                                     ) -> None:
    """The chart's initContainer (cloudnativepg mode) after a helm rollback."""
    assert _cli("migrate", DATABASE_URL=scratch_url).returncode == 0
    _add_future_migration(scratch_url, compatible=True)
    with psycopg.connect(scratch_url) as conn:
        before = conn.execute("SELECT count(*) FROM flyway_schema_history").fetchone()
    plain = _cli("migrate", DATABASE_URL=scratch_url, LOG_FORMAT="text")
    assert plain.returncode == 1
    assert "Database is ahead of the migration files: version 999" in plain.stderr
    allowed = _cli("migrate", "--allow-compatible-ahead", DATABASE_URL=scratch_url,
                   LOG_FORMAT="text")
    assert allowed.returncode == 0, allowed.stderr
    assert "declare this release compatible" in allowed.stderr
    with psycopg.connect(scratch_url) as conn:
        after = conn.execute("SELECT count(*) FROM flyway_schema_history").fetchone()
    assert after == before


def test_migrate_allow_compatible_ahead_still_refuses_an_incompatible_schema(
        scratch_url: str) -> None:
    assert _cli("migrate", DATABASE_URL=scratch_url).returncode == 0
    _add_future_migration(scratch_url, compatible=False)
    refused = _cli("migrate", "--allow-compatible-ahead", DATABASE_URL=scratch_url,
                   LOG_FORMAT="text")
    assert refused.returncode == 1
    assert "Database is ahead of the migration files: version 999" in refused.stderr


def test_migrate_allow_compatible_ahead_applies_pending_migrations(scratch_url: str
                                                                   ) -> None:
    applied = _cli("migrate", "--allow-compatible-ahead", DATABASE_URL=scratch_url,
                   LOG_FORMAT="text")
    assert applied.returncode == 0, applied.stderr
    assert "V1__init.sql" in applied.stderr


def test_serve_refuses_an_unknown_text_search_language(scratch_url: str) -> None:
    refused = _cli("serve", "--port", str(_free_port()), DATABASE_URL=scratch_url,
                   LOG_FORMAT="text", SEARCH_TEXT_LANGUAGE="klingon")
    assert refused.returncode == 1
    assert "SEARCH_TEXT_LANGUAGE=klingon is not a text search configuration" in refused.stderr


def test_serve_runs_on_a_newer_but_compatible_schema(scratch_url: str) -> None:
    """A backward-compatible newer migration (helm rollback) leaves the server serving."""
    assert _cli("migrate", DATABASE_URL=scratch_url).returncode == 0
    with psycopg.connect(scratch_url) as conn:
        conn.execute(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type,"
            " script, checksum, installed_by, execution_time, success)"
            " VALUES (999, '999', 'expand only', 'SQL', 'V999__expand_only.sql', 1,"
            " 'test', 1, true)")
    proc, base = start_server(scratch_url, MIGRATE_ON_START="false")
    try:
        ready = httpx.get(f"{base}/api/v1/ready").json()
        assert ready["status"] == "ready"
        assert ready["migrations"] == "ahead, compatible"
    finally:
        proc.terminate()
        proc.wait(30)


def test_serve_without_database_starts_embedded_postgres(tmp_path: Path) -> None:
    port = _free_port()
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("PG") and k != "DATABASE_URL"}
    environ.update({"DATA_DIR": str(tmp_path / "data"), "LOG_FORMAT": "text"})
    proc = subprocess.Popen([sys.executable, "-m", "fhir_server.cli", "serve", "--host",
                             "127.0.0.1", "--port", str(port)], env=environ, cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "embedded PostgreSQL" in first
        assert str(tmp_path / "data" / "pg") in first
        deadline = time.monotonic() + 90
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/api/v1/ready").status_code
            except httpx.HTTPError:
                time.sleep(0.3)
        assert status == 200
        base = f"http://127.0.0.1:{port}/fhir"
        anonymous = httpx.post(f"{base}/Patient", content=b'{"resourceType":"Patient"}',
                               headers={"Content-Type": "application/fhir+json"})
        assert anonymous.status_code == 401
        # The newcomer's way in: the command the first log lines name, on the same
        # embedded database while the server runs.
        token = subprocess.run(
            [sys.executable, "-m", "fhir_server.cli", "token", "--scope", "system/*.*",
             "--aud", base], env=environ, cwd=ROOT, capture_output=True, text=True,
            check=True, timeout=60).stdout.strip()
        created = httpx.post(f"{base}/Patient", content=b'{"resourceType":"Patient"}',
                             headers={"Content-Type": "application/fhir+json",
                                      "Authorization": f"Bearer {token}"})
        assert created.status_code == 201
    finally:
        proc.terminate()
        proc.wait(30)
