"""Shared fixtures: a real PostgreSQL database per test worker and a real server process.

``DATABASE_URL`` (or libpq ``PG*`` variables) names the PostgreSQL server to use; each
pytest-xdist worker creates its own database there and drops it at the end. Without
them the embedded PostgreSQL (``pgserver``) is started in ``.data/test-pg``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from fhir_server.settings import database_url_from_pg_env

ROOT = Path(__file__).resolve().parent.parent


def _admin_url() -> tuple[str, Any]:
    url = os.environ.get("DATABASE_URL") or database_url_from_pg_env(os.environ)
    if url:
        return url, None
    from fhir_server.storage.embedded import start_embedded

    return start_embedded(ROOT / ".data" / "test")


def _with_database(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in info.items() if v is not None})


@pytest.fixture(scope="session")
def database_url(worker_id: str) -> Iterator[str]:
    """A fresh, empty database for this test worker (dropped afterwards)."""
    admin, handle = _admin_url()
    name = f"fhir_test_{worker_id}_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
        del handle


@pytest.fixture(scope="session")
def migrated_url(database_url: str) -> str:
    """The worker's database with every migration applied."""
    from fhir_server.paths import data_dir
    from fhir_server.storage.admin import apply_migrations

    apply_migrations(database_url, data_dir("migrations"))
    return database_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(database_url: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``fhir-server serve`` on a free loopback port and wait until it is ready."""
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    environ.update({"DATABASE_URL": database_url, "MIGRATE_ON_START": "true",
                    "LOG_LEVEL": "warning", "DB_POOL_MIN": "1", "DB_POOL_MAX": "4"})
    environ.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fhir_server.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        env=environ, cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fhir-server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/api/v1/ready", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("fhir-server did not become ready within 60 s")


@contextmanager
def running_server(database_url: str, **env: str) -> Iterator[str]:
    """``start_server``'s base URL; the server is stopped (killed if it hangs) on exit."""
    proc, base = start_server(database_url, **env)
    try:
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[str]:
    """The base URL of a real server process on this worker's database."""
    with running_server(database_url) as base:
        yield base


@pytest.fixture(scope="session")
def client(server: str) -> Iterator[httpx.Client]:
    """An HTTP client for the FHIR API of the test server (base ``/fhir``)."""
    with httpx.Client(base_url=f"{server}/fhir", timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def root_client(server: str) -> Iterator[httpx.Client]:
    """An HTTP client for the test server's root (operator endpoints)."""
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c
