"""A test run leaves no databases behind on the server it was given.

A pytest of its own (with a token of its own) runs the CLI tests that create scratch
databases, and tests that fail while holding some; afterwards no database with that
token may be left on the server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg

from tests.conftest import ROOT, RUN_TOKEN_ENV, leftover_databases, scratch_database


def test_scratch_database_is_dropped_on_error(database_url: str) -> None:
    try:
        with scratch_database(database_url, "drop") as url:
            name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
            psycopg.connect(url).close()
            assert name in leftover_databases(database_url)
            raise KeyError("boom")
    except KeyError:
        pass
    assert name not in leftover_databases(database_url)


def test_a_run_leaves_no_scratch_databases(database_url: str) -> None:
    token = f"p{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PG", "PYTEST_")) and k != "DATABASE_URL"}
    env.update({RUN_TOKEN_ENV: token, "DATABASE_URL": database_url})
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "addopts=",
         "tests/integration/test_cli.py::test_migrate_and_info",
         "tests/integration/test_cli.py::test_serve_refuses_a_database_ahead_of_its_files",
         "tests/integration/scratch_probe.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = run.stdout + run.stderr
    assert "2 failed, 2 passed" in out, out[-3000:]
    assert "left behind" not in out, out[-3000:]
    assert leftover_databases(database_url, token) == []
