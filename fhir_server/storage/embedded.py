"""An embedded PostgreSQL (the ``pgserver`` package) for running without a database.

``pgserver`` ships PostgreSQL binaries in its wheel, runs ``initdb`` on first use and
listens on a Unix socket only; as root it runs the server as a ``pgserver`` system user.
"""

from __future__ import annotations

import fcntl
import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) the embedded server in ``data_dir/pg``; return (url, handle).

    Keep the handle alive for as long as the database is needed: pgserver stops the
    server when the last handle in the last process using it goes away.
    """
    pg_dir = (data_dir / "pg").resolve()
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    # pgserver's first start (initdb) is not safe against a concurrent one in the same
    # folder (test workers, two commands at once): one process at a time starts it.
    with open(pg_dir.parent / "pg.lock", "w") as lock, warnings.catch_warnings():
        fcntl.flock(lock, fcntl.LOCK_EX)
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
        warnings.simplefilter("ignore")
        from pgserver import get_server  # type: ignore[attr-defined]

        server = get_server(pg_dir, cleanup_mode="stop")
    url: str = server.get_uri()
    return url, server
