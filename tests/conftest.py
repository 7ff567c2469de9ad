"""Shared fixtures: a real PostgreSQL database per test worker and a real server process.

``DATABASE_URL`` (or libpq ``PG*`` variables) names the PostgreSQL server to use; each
pytest-xdist worker creates its own database there and drops it at the end. Without
them the embedded PostgreSQL (``pgserver``) is started in ``.data/test-pg``.

Every database a test creates is named ``<prefix>_<run token>_...`` (``scratch_name``)
and dropped however the test ends (``scratch_database``); at the end of the run the
server is searched for names holding the run's token, and any found fail the run.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import uuid
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
#: The environment variable holding this run's token (set once by the controller,
#: inherited by the xdist workers and by any pytest a test starts).
RUN_TOKEN_ENV = "FHIR_TEST_RUN_TOKEN"
#: The local server some tests use without ``DATABASE_URL`` when it answers.
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_scratch_numbers = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and not os.environ.get(RUN_TOKEN_ENV):
        os.environ[RUN_TOKEN_ENV] = f"r{uuid.uuid4().hex[:8]}"


def run_token() -> str:
    """The token in the name of every database this run creates."""
    token = os.environ.get(RUN_TOKEN_ENV)
    if not token:  # imported outside pytest (or before pytest_configure)
        token = os.environ[RUN_TOKEN_ENV] = f"r{uuid.uuid4().hex[:8]}"
    return token


def scratch_name(prefix: str) -> str:
    """A new database name ``<prefix>_<run token>_<pid>_<n>``, unique in the run."""
    return f"{prefix}_{run_token()}_{os.getpid()}_{next(_scratch_numbers)}"


def drop_database(admin_url: str, name: str) -> None:
    """``DROP DATABASE IF EXISTS name WITH (FORCE)`` (ends the sessions still on it)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """The URL of a fresh, empty database on ``admin_url``'s server, dropped on exit.

    The database is dropped however the block ends (failed assertion, error, Ctrl-C),
    even with connections to it still open.
    """
    name = scratch_name(prefix)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(admin_url, name)
    finally:
        drop_database(admin_url, name)


def leftover_databases(admin_url: str, token: str | None = None) -> list[str]:
    """The databases on ``admin_url``'s server whose names hold ``token`` (this run's)."""
    token = token or run_token()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE strpos(datname, %s) > 0"
                            " ORDER BY datname", (f"_{token}_",)).fetchall()
    return [str(r[0]) for r in rows]


def _servers_to_check() -> list[str]:
    """DATABASE_URL's (or PG*'s) server; else the local one if it answers."""
    url = os.environ.get("DATABASE_URL") or database_url_from_pg_env(os.environ)
    if url:
        return [url]
    try:
        with psycopg.connect(LOCAL_URL, connect_timeout=2):
            return [LOCAL_URL]
    except psycopg.OperationalError:
        return []  # only the embedded server, which is gone by now


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run (after dropping them) if any of its scratch databases are left."""
    if hasattr(session.config, "workerinput"):
        return  # the controller checks once every worker is done
    left: list[str] = []
    for url in _servers_to_check():
        try:
            names = leftover_databases(url)
        except psycopg.OperationalError:
            continue
        for name in names:
            drop_database(url, name)
        left += names
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"scratch databases left behind by this run (now dropped): {left}"
        if reporter is not None:
            reporter.write("\n")
            reporter.write_sep("=", message, red=True)
        else:
            print(message, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def scratch_url(database_url: str) -> Iterator[str]:
    """A second, empty database next to the worker's one, dropped after the test."""
    with scratch_database(database_url, "cli") as url:
        yield url


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
    try:
        with scratch_database(admin, f"fhir_test_{worker_id}") as url:
            yield url
    finally:
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
    # Authorization has tests of its own (tests/integration/auth); elsewhere it is off.
    # So is the limit of requests in flight (tests/integration/http): every test server
    # is one client (127.0.0.1) to a Redis they all share.
    environ.update({"DATABASE_URL": database_url, "MIGRATE_ON_START": "true",
                    "LOG_LEVEL": "warning", "DB_POOL_MIN": "1", "DB_POOL_MAX": "4",
                    "AUTH_MODE": "off", "MAX_IN_FLIGHT_PER_CLIENT": "0"})
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
