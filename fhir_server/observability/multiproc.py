"""prometheus-client's multiprocess mode: the shared directory and dead workers.

With several uvicorn workers each process writes its metric values to memory-mapped
files in ``PROMETHEUS_MULTIPROC_DIR``; a scrape, answered by any worker, merges them.

This module does not import prometheus_client at import time on purpose:
prometheus_client picks its value storage (in-process or files) once, when it is first
imported, from whether ``PROMETHEUS_MULTIPROC_DIR`` is set, so the CLI must set the
variable (:func:`prepare_multiprocess_dir`) before anything imports it.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

ENV_VAR: Final = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)


def prepare_multiprocess_dir(path: Path | None) -> Path:
    """Create or empty the metrics directory and export ``PROMETHEUS_MULTIPROC_DIR``.

    Call it in the parent process before uvicorn starts its workers (they inherit the
    environment). ``path`` None means: ``PROMETHEUS_MULTIPROC_DIR`` if already set, else
    a new temporary directory that is removed when this process exits. Only ``*.db``
    files are deleted from an existing directory: values left by a previous run would
    otherwise be added to this run's counters.
    """
    if path is None:
        configured = os.environ.get(ENV_VAR)
        if configured:
            path = Path(configured)
        else:
            path = Path(tempfile.mkdtemp(prefix="fhir-server-metrics-"))
            # Ours alone: remove it with the server (workers are children of this process).
            atexit.register(shutil.rmtree, path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[ENV_VAR] = str(path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def reap_dead_workers(path: Path) -> list[int]:
    """``mark_process_dead`` every worker whose live-gauge files remain but is gone.

    uvicorn restarts a crashed worker without telling the application, so the check is
    made at scrape time: a ``gauge_live*_<pid>.db`` whose pid no longer exists would
    otherwise keep adding a dead worker's pool and memory to the sums. Counter and
    histogram files are kept: their totals must not go down. Returns the pids reaped.
    """
    from prometheus_client import multiprocess

    me = os.getpid()
    dead: set[int] = set()
    for file in path.glob("gauge_live*_*.db"):
        tail = file.stem.rsplit("_", 1)[-1]
        if tail.isdigit() and int(tail) != me and not _alive(int(tail)):
            dead.add(int(tail))
    for pid in sorted(dead):
        multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
        log.info("removed the live metrics of worker %s, which is gone", pid)
    return sorted(dead)


def active_multiprocess_dir() -> Path | None:
    """The directory this process writes metric values to, or None when in-process.

    Decided by the value class prometheus_client actually uses, not by the environment
    alone: had it been imported before the variable was set, values live in memory and
    a scrape must read them there.
    """
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    configured = os.environ.get(ENV_VAR)
    return Path(configured) if configured else None
