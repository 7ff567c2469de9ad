"""The /metrics route, pool/process/job gauges and the sampler (in-process mode)."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.applications import Starlette
from starlette.testclient import TestClient

from fhir_server.observability.metrics import (
    CONTENT_TYPE,
    FhirMetrics,
    default_metrics,
    metrics_route,
    sample_forever,
)

from .conftest import FakePool, families, sample_value


def test_metrics_route_answers_text_format_0_0_4(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.headers["content-type"] == CONTENT_TYPE
    assert response.headers["cache-control"] == "no-store"
    assert response.text.startswith("# HELP ")


def test_metric_names_and_types(client: TestClient) -> None:
    client.get("/fhir/Patient/1")
    fams = families(client.get("/metrics").text)
    expected = {
        "http_requests": "counter",
        "http_request_duration_seconds": "histogram",
        "fhir_searches": "counter",
        "fhir_transactions": "counter",
        "fhir_db_pool_connections": "gauge",
        "fhir_background_jobs": "gauge",
        "process_resident_memory_bytes": "gauge",
        "process_cpu_seconds": "counter",
    }
    assert {name: fams[name].type for name in expected} == expected
    samples = [s for f in fams.values() for s in f.samples]
    assert not [s for s in samples if s.name.endswith("_created")]


def test_pool_gauges_come_from_get_stats(client: TestClient) -> None:
    text = client.get("/metrics").text
    states = {"in_use": 3, "idle": 1, "waiting": 2, "size": 4, "max": 10}
    for state, value in states.items():
        assert sample_value(text, "fhir_db_pool_connections", state=state) == value


def test_scrape_before_the_pool_exists() -> None:
    class State:
        pass

    state = State()
    metrics = FhirMetrics()
    app = Starlette(routes=[metrics_route(lambda: state.pool,  # type: ignore[attr-defined]
                                          metrics=metrics)])
    text = TestClient(app).get("/metrics").text
    assert sample_value(text, "fhir_db_pool_connections", state="size") is None
    assert (sample_value(text, "process_resident_memory_bytes") or 0) > 1_000_000
    assert (sample_value(text, "process_cpu_seconds_total") or 0) > 0


def test_background_jobs_gauge_zeroes_vanished_pairs(metrics: FhirMetrics) -> None:
    metrics.set_background_jobs({("reindex", "running"): 1, ("reindex", "queued"): 3})
    metrics.set_background_jobs({("reindex", "done"): 4})
    text = metrics.exposition().decode()
    value = sample_value
    assert value(text, "fhir_background_jobs", kind="reindex", status="running") == 0
    assert value(text, "fhir_background_jobs", kind="reindex", status="queued") == 0
    assert value(text, "fhir_background_jobs", kind="reindex", status="done") == 4


def test_process_cpu_counter_only_grows(metrics: FhirMetrics) -> None:
    metrics.sample_process()
    first = sample_value(metrics.exposition().decode(), "process_cpu_seconds_total") or 0
    sum(i * i for i in range(300_000))
    metrics.sample_process()
    second = sample_value(metrics.exposition().decode(), "process_cpu_seconds_total") or 0
    assert 0 < first <= second


def test_sample_forever_refreshes_until_cancelled(metrics: FhirMetrics) -> None:
    pool = FakePool(size=7, available=7, waiting=0)

    async def run() -> None:
        task = asyncio.create_task(sample_forever(lambda: pool, interval=0.01,
                                                  metrics=metrics))
        await asyncio.sleep(0.05)
        pool.stats["pool_available"] = 2
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    text = metrics.exposition().decode()
    assert sample_value(text, "fhir_db_pool_connections", state="in_use") == 5
    assert sample_value(text, "fhir_db_pool_connections", state="idle") == 2


def test_default_metrics_is_one_per_process() -> None:
    assert default_metrics() is default_metrics()
