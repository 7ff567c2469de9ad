"""A private PostgreSQL cluster that a test may stop and start at will.

Fault scenarios must never touch the shared PostgreSQL the rest of the suite uses, so
they run ``initdb`` and ``pg_ctl`` from the ``pgserver`` wheel's binaries on a fresh data
directory, listening on a free loopback TCP port (and a Unix socket in the same
temporary folder). As root, PostgreSQL refuses to run, so the cluster then runs as the
``pgserver`` system user, like the embedded server does.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from tests.conftest import ROOT


def _pgserver_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    assert spec is not None and spec.submodule_search_locations, "pgserver is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


PG_BIN = _pgserver_dir() / "pginstall" / "bin"
SYSTEM_USER = "pgserver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_root() -> bool:
    return os.geteuid() == 0


def _prepare_root_permissions(folder: Path) -> None:
    """Let the ``pgserver`` user run the binaries and own ``folder``."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
        warnings.simplefilter("ignore")
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    ensure_prefix_permissions(PG_BIN)
    read = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(PG_BIN, read | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(PG_BIN.parent / "lib", read)
    ensure_folder_permissions(PG_BIN.parent / "share", read)
    os.chown(folder, entry.pw_uid, entry.pw_gid)


class Cluster:
    """One PostgreSQL cluster in a temporary folder; ``stop()``/``start()`` at will."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fhir-ops-pg-"))
        self.root.chmod(0o755)
        self.user: str | None = None
        if _as_root():
            _prepare_root_permissions(self.root)
            self.user = SYSTEM_USER
        self.pgdata = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self._run(PG_BIN / "initdb", "-D", str(self.pgdata), "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "-U", "postgres", "--no-sync")

    def _run(self, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout, user=self.user, cwd=self.root, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr}"
                               f"\n--- server log ---\n{self.log_text()}")
        return done

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def start(self) -> None:
        """Start the server (same port every time) and wait until it accepts connections."""
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
                   " -c full_page_writes=off -c max_connections=60 -c shared_buffers=32MB")
        self._run(PG_BIN / "pg_ctl", "-D", self.pgdata, "-l", self.log, "-o", options,
                  "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` disconnects sessions and rolls back transactions)."""
        self._run(PG_BIN / "pg_ctl", "-D", self.pgdata, "-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        done = subprocess.run([str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "status"],
                              capture_output=True, user=self.user, check=False)
        return done.returncode == 0

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def destroy(self) -> None:
        """Stop the server (immediately) and delete the folder."""
        if self.pgdata.exists() and self.running():
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def cluster() -> Iterator[Cluster]:
    """A started private cluster, destroyed afterwards."""
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.destroy()


def wait_until(predicate: Callable[[], bool], timeout: float,
               interval: float = 0.1) -> float | None:
    """Poll ``predicate()`` until it is true; the seconds it took, or None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    return None


def launch_server(database_url: str, log: Path,
                  **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """Like ``tests.conftest.start_server``, in its own session, its output in ``log``.

    Its own session (process group) lets a test signal the whole server, as a process
    supervisor would, without touching the test process.
    """
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    environ.update({"DATABASE_URL": database_url, "MIGRATE_ON_START": "true",
                    "LOG_LEVEL": "warning", "LOG_FORMAT": "text", "DB_POOL_MIN": "1",
                    "DB_POOL_MAX": "4", "AUTH_MODE": "off", "MAX_IN_FLIGHT_PER_CLIENT": "0"})
    environ.update(env)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fhir_server.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            env=environ, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"fhir-server exited with {proc.returncode}:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(f"{base}/api/v1/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    if wait_until(up, 60, 0.1) is None:
        stop_server(proc)
        raise RuntimeError("fhir-server did not become ready within 60 s")
    return proc, base


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it is still running after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
