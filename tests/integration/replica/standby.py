"""A private primary and its streaming standby (``pg_basebackup -R``), for replica tests.

The shared PostgreSQL of the suite is never changed: the primary is a fresh cluster of
``tests.integration.ops.cluster`` (its defaults allow replication from 127.0.0.1 with
trust), the standby a base backup of it with ``-R`` (``standby.signal`` and
``primary_conninfo`` written), on ports of their own.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.integration.ops.cluster import (
    PG_BIN,
    SYSTEM_USER,
    Cluster,
    _as_root,
    _free_port,
    _prepare_root_permissions,
    cluster,
)


class Standby(Cluster):
    """A hot standby of ``primary`` (its own folder and port), streaming from it."""

    def __init__(self, primary: Cluster) -> None:  # no initdb: a base backup instead
        self.root = Path(tempfile.mkdtemp(prefix="fhir-standby-pg-"))
        self.root.chmod(0o755)
        self.user = None
        if _as_root():
            _prepare_root_permissions(self.root)
            self.user = SYSTEM_USER
        self.pgdata = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self._run(PG_BIN / "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port),
                  "-U", "postgres", "-D", str(self.pgdata), "-R", "-X", "stream",
                  "-c", "fast", "--no-sync")

    def replay(self, paused: bool) -> None:
        """Pause or resume the replay of the primary's WAL (the standby then lags)."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()" if paused
                         else "SELECT pg_wal_replay_resume()")


def replayed(primary: Cluster, standby: Standby, timeout: float = 10) -> None:
    """Wait until the standby has replayed everything the primary has written."""
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    deadline = time.monotonic() + timeout
    with psycopg.connect(standby.url(), autocommit=True) as conn:
        while time.monotonic() < deadline:
            done = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                (row[0],)).fetchone()
            if done and done[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the standby did not catch up within the timeout")


@contextmanager
def primary_and_standby() -> Iterator[tuple[Cluster, Standby]]:
    """A started primary and a started standby of it; both destroyed afterwards."""
    with cluster() as primary:
        standby = Standby(primary)
        try:
            standby.start()
            yield primary, standby
        finally:
            standby.destroy()
