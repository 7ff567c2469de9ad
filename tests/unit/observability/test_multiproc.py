"""prometheus-client multiprocess mode: the directory, merging workers, dead workers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import values
from starlette.testclient import TestClient

from fhir_server.observability.metrics import FhirMetrics
from fhir_server.observability.multiproc import (
    ENV_VAR,
    prepare_multiprocess_dir,
    reap_dead_workers,
)

from .conftest import FakePool, build_app, families, sample_value

ROOT = Path(__file__).resolve().parents[3]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def mp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A multiprocess directory in the environment (values still in-process)."""
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    return tmp_path


@pytest.fixture
def as_worker(mp_dir: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], FhirMetrics]]:
    """Make metrics as if this process were worker ``pid`` writing to ``mp_dir``."""
    made: list[Any] = []

    def make(pid: int) -> FhirMetrics:
        value_class = values.MultiProcessValue(lambda: pid)  # type: ignore[no-untyped-call]
        made.append(value_class)
        monkeypatch.setattr(values, "ValueClass", value_class)
        return FhirMetrics()

    yield make
    for value_class in made:
        close = getattr(value_class, "close_all_files", None)  # prometheus-client >= 0.21
        if close is not None:
            close()


def test_prepare_creates_cleans_and_exports(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    target = tmp_path / "a" / "metrics"
    assert prepare_multiprocess_dir(target) == target and target.is_dir()
    (target / "counter_123.db").write_bytes(b"old")
    (target / "keep.txt").write_text("not ours")
    assert prepare_multiprocess_dir(target) == target
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    assert os.environ[ENV_VAR] == str(target)
    # None: the directory already configured ...
    (target / "gauge_livesum_9.db").write_bytes(b"old")
    assert prepare_multiprocess_dir(None) == target
    assert not list(target.glob("*.db"))
    # ... or a fresh temporary one.
    monkeypatch.delenv(ENV_VAR)
    fresh = prepare_multiprocess_dir(None)
    try:
        assert fresh.is_dir() and os.environ[ENV_VAR] == str(fresh)
    finally:
        shutil.rmtree(fresh)


def test_two_workers_merge_into_one_scrape(as_worker: Callable[[int], FhirMetrics],
                                           mp_dir: Path) -> None:
    # Two live pids (this process and its parent) stand for two uvicorn workers.
    workers = {os.getpid(): FakePool(size=4, available=1, waiting=0),
               os.getppid(): FakePool(size=6, available=6, waiting=1)}
    for pid, pool in workers.items():
        metrics = as_worker(pid)
        assert metrics.multiprocess_dir == mp_dir
        with TestClient(build_app(metrics, pool), raise_server_exceptions=False) as client:
            assert client.get("/fhir/Patient/1").status_code == 200
            assert client.get("/boom").status_code == 500
            client.get("/fhir/Observation?code=x")
        metrics.update_pool(pool)
        metrics.sample_process()
    assert {p.name for p in mp_dir.iterdir()} >= {
        f"{kind}_{pid}.db" for pid in workers
        for kind in ("counter", "histogram", "gauge_livesum")}

    text = metrics.exposition().decode()
    value = sample_value
    assert value(text, "http_requests_total", method="GET",
                 route="/fhir/{resource_type}/{id}", status_class="2xx") == 2
    assert value(text, "http_requests_total", method="GET", route="/boom",
                 status_class="5xx") == 2
    assert value(text, "http_request_duration_seconds_count", interaction="read",
                 resource_type="Patient") == 2
    assert value(text, "http_request_duration_seconds_bucket", interaction="read",
                 resource_type="Patient", le="+Inf") == 2
    assert value(text, "fhir_searches_total", resource_type="Observation") == 2
    # livesum: pools and memory add up over the live workers.
    assert value(text, "fhir_db_pool_connections", state="size") == 10
    assert value(text, "fhir_db_pool_connections", state="in_use") == 3
    assert value(text, "fhir_db_pool_connections", state="waiting") == 1
    assert (value(text, "process_resident_memory_bytes") or 0) > 0
    fams = families(text)
    assert fams["process_cpu_seconds"].type == "counter"
    assert fams["fhir_db_pool_connections"].type == "gauge"
    # No per-pid series: livesum folds them.
    assert "pid=" not in text


def test_dead_workers_gauges_are_reaped_but_counts_kept(
        as_worker: Callable[[int], FhirMetrics], mp_dir: Path) -> None:
    dead = _dead_pid()
    gone = as_worker(dead)
    gone.update_pool(FakePool(size=5, available=5, waiting=0))
    gone.set_background_jobs({("reindex", "running"): 1})
    gone.observe(gone.series("GET", "/fhir/{resource_type}/{id}", 200, "read", "Patient",
                             None), 0.002)
    alive = as_worker(os.getpid())
    alive.update_pool(FakePool(size=2, available=2, waiting=0))

    text = alive.exposition().decode()  # reaps at scrape time
    assert sample_value(text, "fhir_db_pool_connections", state="size") == 2
    assert sample_value(text, "fhir_background_jobs", kind="reindex") is None
    assert sample_value(text, "http_requests_total", status_class="2xx") == 1
    assert not list(mp_dir.glob(f"gauge_live*_{dead}.db"))
    assert (mp_dir / f"counter_{dead}.db").exists()
    assert reap_dead_workers(mp_dir) == []


def test_real_worker_processes_share_one_directory(mp_dir: Path,
                                                   as_worker: Callable[[int], FhirMetrics]
                                                   ) -> None:
    code = (
        "from fhir_server.observability.metrics import default_metrics\n"
        "class Pool:\n"
        "    def get_stats(self): return {'pool_size': 3, 'pool_available': 1}\n"
        "m = default_metrics()\n"
        "assert m.multiprocess_dir is not None\n"
        "m.observe(m.series('POST', '/fhir', 200, 'transaction', '-', 'transaction'), 0.2)\n"
        "m.update_pool(Pool())\n"
        "m.set_background_jobs({('reindex', 'done'): 2})\n"
    )
    env = {**os.environ, ENV_VAR: str(mp_dir)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    text = as_worker(os.getpid()).exposition().decode()
    assert sample_value(text, "http_requests_total", method="POST", route="/fhir",
                        status_class="2xx") == 2
    assert sample_value(text, "fhir_transactions_total", type="transaction",
                        outcome="success") == 2
    assert sample_value(text, "http_request_duration_seconds_bucket",
                        interaction="transaction", le="0.25") == 2
    assert sample_value(text, "http_request_duration_seconds_bucket",
                        interaction="transaction", le="0.15") == 0
    # Both processes have exited: their live gauges are gone, their counts stay.
    assert sample_value(text, "fhir_db_pool_connections", state="size") is None
    assert sample_value(text, "fhir_background_jobs", kind="reindex") is None
