"""Fixtures of the operations scenarios: a private PostgreSQL cluster per module."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.ops.cluster import Cluster, cluster, launch_server


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Cluster]:
    """A private, started PostgreSQL 16 cluster that tests may stop and start."""
    with cluster() as c:
        yield c


@pytest.fixture
def cluster_db(pg_cluster: Cluster) -> str:
    """A fresh, empty database in the private cluster (its URL)."""
    if not pg_cluster.running():  # a previous scenario failed while it was stopped
        pg_cluster.start()
    return pg_cluster.create_database(f"ops_{os.getpid()}_{time.monotonic_ns()}")


@pytest.fixture
def server_log(tmp_path: Path) -> Iterator[Path]:
    """Where the scenario's servers write their output; printed when it fails."""
    log = tmp_path / "server.log"
    yield log
    if log.exists():
        print(f"--- server output ({log}) ---")
        print(log.read_text(errors="replace")[-20000:])


@pytest.fixture
def spawn(server_log: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], str]]]:
    """``launch_server`` whose processes are killed at the end, whatever happened."""
    started: list[subprocess.Popen[bytes]] = []

    def launch(database_url: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
        proc, base = launch_server(database_url, server_log, **env)
        started.append(proc)
        return proc, base

    yield launch
    for proc in started:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
