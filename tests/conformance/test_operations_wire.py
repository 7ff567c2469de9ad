"""Operator-facing wire behaviour of a real server: rate limits, metrics, request ids."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import running_server


@pytest.fixture(scope="module")
def limited(database_url: str) -> Iterator[str]:
    with running_server(database_url, RATE_LIMIT_PER_MINUTE="5", REDIS_URL="") as base:
        yield base


def test_rate_limit_answers_429_with_retry_after(limited: str) -> None:
    statuses = [httpx.get(f"{limited}/fhir/metadata").status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5
    refused = httpx.get(f"{limited}/fhir/metadata")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    body = refused.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "throttled"
    # Probes are never limited.
    assert httpx.get(f"{limited}/api/v1/health").status_code == 200


@pytest.mark.http_only
def test_metrics_and_request_ids(root_client: httpx.Client, client: httpx.Client) -> None:
    read = client.get("/Patient/not-there", headers={"X-Request-ID": "abc-123"})
    assert read.status_code == 404
    assert read.headers["x-request-id"] == "abc-123"
    generated = client.get("/metadata").headers["x-request-id"]
    assert len(generated) == 32
    metrics = root_client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'route="/fhir/{resource_type}/{id}"' in text
    assert "not-there" not in text
    for name in ("http_requests_total", "http_request_duration_seconds_bucket",
                 "fhir_db_pool_connections", "process_resident_memory_bytes"):
        assert name in text
