"""Scratch databases and a command runner for the ``fhir-server import`` tests.

Each test gets its own migrated database ``imp_test_<pid>_<n>`` on the PostgreSQL of
the session's ``database_url`` fixture (``DATABASE_URL``, else libpq's ``PG*``, else the
embedded server), dropped afterwards.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from fhir_server.paths import data_dir
from fhir_server.storage.admin import apply_migrations
from tests.conftest import ROOT, _with_database, scratch_name

_numbers = itertools.count()


@dataclass
class ImportRun:
    """One finished ``fhir-server import``."""

    status: int
    summary: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def locations(self) -> list[str]:
        """The locations of the reported problems."""
        return [p["location"] for p in self.summary.get("problems", [])]


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@pytest.fixture
def make_db(database_url: str) -> Iterator[Callable[[bool], str]]:
    """Create scratch databases (migrated unless told otherwise); all dropped after."""
    names: list[str] = []

    def make(migrated: bool = True) -> str:
        name = scratch_name("imp_test")
        _drop(database_url, name)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        names.append(name)
        url = _with_database(database_url, name)
        if migrated:
            apply_migrations(url, data_dir("migrations"))
        return url

    yield make
    for name in names:
        _drop(database_url, name)


def run_import(url: str, *args: str | Path, tmp_path: Path) -> ImportRun:
    """``fhir-server import ARGS`` against ``url`` in a subprocess, with its summary."""
    summary = tmp_path / f"summary-{next(_numbers)}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(DATABASE_URL=url, LOG_LEVEL="warning", LOG_FORMAT="text")
    proc = subprocess.run(
        [sys.executable, "-m", "fhir_server.cli", "import", "--workers", "2", "--no-progress",
         "--summary-json", str(summary), *map(str, args)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    data = json.loads(summary.read_text()) if summary.exists() else {}
    return ImportRun(proc.returncode, data, proc.stdout, proc.stderr)


def scalar(url: str, query: str, *params: Any) -> Any:
    """The first value of a query's first row."""
    with psycopg.connect(url) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    return None if row is None else row[0]


def stored_types(url: str) -> Counter[str]:
    """Current (not deleted) resources by type."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT resource_type, count(*) FROM resource"
                            " WHERE NOT deleted GROUP BY 1").fetchall()
    return Counter({t: n for t, n in rows})
