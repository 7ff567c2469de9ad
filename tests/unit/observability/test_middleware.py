"""ObservabilityMiddleware through a Starlette app: metrics, access log, request ids."""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from fhir_server.observability.context import RequestIdFilter, current_request_id
from fhir_server.observability.metrics import DURATION_BUCKETS, FhirMetrics
from fhir_server.observability.middleware import ObservabilityMiddleware

from .conftest import families, sample_value

ACCESS_KEYS = {"time", "level", "logger", "message", "request_id", "method", "route",
               "status", "duration_ms", "client_id"}


def _jwt(claims: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJl"


def _access(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["logger"] == "fhir_server.access"]


def test_request_metrics_use_templates_and_status_classes(client: TestClient) -> None:
    assert client.get("/fhir/Patient/123").status_code == 200
    assert client.get("/fhir/Patient/456").status_code == 200
    assert client.get("/fhir/Patient/missing").status_code == 404
    assert client.get("/no/such/path/789").status_code == 404
    assert client.get("/boom").status_code == 500
    assert client.put("/fhir/Observation/1").status_code == 200
    text = client.get("/metrics").text

    fams = families(text)
    assert fams["http_requests"].type == "counter"
    assert fams["http_request_duration_seconds"].type == "histogram"
    value = sample_value
    assert value(text, "http_requests_total", method="GET",
                 route="/fhir/{resource_type}/{id}", status_class="2xx") == 2
    assert value(text, "http_requests_total", method="GET",
                 route="/fhir/{resource_type}/{id}", status_class="4xx") == 1
    assert value(text, "http_requests_total", method="GET", route="unmatched",
                 status_class="4xx") == 1
    assert value(text, "http_requests_total", method="GET", route="/boom",
                 status_class="5xx") == 1
    # Raw ids and paths never become label values.
    labels = {v for fam in fams.values() for s in fam.samples for v in s.labels.values()}
    assert not any("123" in v or "789" in v or "/no/such" in v for v in labels)
    assert value(text, "http_request_duration_seconds_count", interaction="read",
                 resource_type="Patient") == 3
    assert value(text, "http_request_duration_seconds_count", interaction="update",
                 resource_type="Observation") == 1
    assert value(text, "http_request_duration_seconds_count", interaction="other",
                 resource_type="-") == 2  # /boom and the unmatched path


def test_histogram_buckets_span_1ms_to_10s(client: TestClient) -> None:
    client.get("/fhir/Patient/1")
    fam = families(client.get("/metrics").text)["http_request_duration_seconds"]
    bounds = [s.labels["le"] for s in fam.samples
              if s.name.endswith("_bucket") and s.labels["interaction"] == "read"]
    assert bounds == [str(b) for b in DURATION_BUCKETS] + ["+Inf"]
    assert DURATION_BUCKETS[0] == 0.001 and DURATION_BUCKETS[-1] == 10.0
    # No bucket more than 2.5x the previous one, so p50/p95/p99 interpolate well.
    assert all(b / a <= 2.5 for a, b in itertools.pairwise(DURATION_BUCKETS))


def test_unknown_resource_types_do_not_become_labels(client: TestClient) -> None:
    client.get("/fhir/Garbagexyz/1")
    client.get("/fhir/Patientz")
    text = client.get("/metrics").text
    assert "Garbagexyz" not in text and "Patientz" not in text
    assert sample_value(text, "http_request_duration_seconds_count", interaction="read",
                        resource_type="unknown") == 1
    assert sample_value(text, "fhir_searches_total", resource_type="unknown") == 1


def test_search_create_and_bundle_counters(client: TestClient) -> None:
    client.get("/fhir/Observation?code=secret")
    client.get("/fhir/Observation")
    client.post("/fhir/Patient", headers={"If-None-Exist": "identifier=x"})
    client.post("/fhir/Patient")
    client.post("/fhir", json={"type": "transaction"})
    client.post("/fhir", json={"type": "transaction", "fail": True})
    client.post("/fhir", json={"type": "batch"})
    client.post("/fhir", json={"type": "nonsense"})
    client.post("/fhir", json={"type": ["not", "hashable"]})
    text = client.get("/metrics").text
    assert families(text)["fhir_searches"].type == "counter"
    assert sample_value(text, "fhir_searches_total", resource_type="Observation") == 2
    assert sample_value(text, "http_request_duration_seconds_count",
                        interaction="conditional-create", resource_type="Patient") == 1
    assert sample_value(text, "http_request_duration_seconds_count",
                        interaction="create", resource_type="Patient") == 1
    tx = "fhir_transactions_total"
    assert sample_value(text, tx, type="transaction", outcome="success") == 1
    assert sample_value(text, tx, type="transaction", outcome="client_error") == 1
    assert sample_value(text, tx, type="batch", outcome="success") == 1
    assert sample_value(text, "http_request_duration_seconds_count",
                        interaction="transaction", resource_type="-") == 2
    assert sample_value(text, "http_request_duration_seconds_count",
                        interaction="transaction/batch", resource_type="-") == 2


def test_access_log_is_one_json_line_with_exact_keys(client: TestClient,
                                                     log_records: Any) -> None:
    token = _jwt({"client_id": "ward-app", "sub": "someone"})
    response = client.get("/fhir/Patient/123?identifier=MRN-SECRET-42",
                          headers={"Authorization": f"Bearer {token}"})
    (line,) = _access(log_records())
    assert set(line) == ACCESS_KEYS
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["method"], line["route"], line["status"]) == (
        "GET", "/fhir/{resource_type}/{id}", 200)
    assert line["client_id"] == "ward-app"
    assert line["level"] == "info"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


def test_logs_hold_no_query_body_id_or_token(client: TestClient, log_records: Any) -> None:
    token = _jwt({"azp": "portal"})
    client.get("/fhir/Patient/pat-777?identifier=MRN-SECRET-42",
               headers={"Authorization": f"Bearer {token}"})
    client.post("/fhir", json={"type": "batch", "entry": [{"name": "BODY-SECRET"}]})
    client.get("/boom?ssn=SSN-SECRET")
    raw = orjson.dumps(log_records()).decode()
    for secret in ("MRN-SECRET", "pat-777", "BODY-SECRET", "SSN-SECRET", token,
                   token.split(".")[1], "identifier="):
        assert secret not in raw
    assert [r["client_id"] for r in _access(log_records())] == ["portal", "-", "-"]


def test_unhandled_error_logs_the_exception_once_with_a_500(client: TestClient,
                                                           log_records: Any) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    (line,) = _access(log_records())
    assert line["status"] == 500 and line["level"] == "error" and line["route"] == "/boom"
    assert "RuntimeError" in line["exception"]
    # The 500 is sent by ServerErrorMiddleware, outside; the handler adds the id itself.
    assert response.headers["x-request-id"] == line["request_id"]


def test_request_id_echoed_when_sane_else_generated(client: TestClient) -> None:
    given = client.get("/fhir/Patient/1", headers={"X-Request-ID": "abc-123_x.y"})
    assert given.headers["x-request-id"] == "abc-123_x.y"
    generated = client.get("/fhir/Patient/1")
    first = generated.headers["x-request-id"]
    assert len(first) == 32 and int(first, 16) >= 0
    assert client.get("/fhir/Patient/1").headers["x-request-id"] != first
    for bad in ("has space", "quote\"d", "x" * 200, "ü-nicode", "-leading-dash"):
        echoed = client.get("/fhir/Patient/1", headers={"X-Request-ID": bad.encode()})
        assert echoed.headers["x-request-id"] != bad
        assert len(echoed.headers["x-request-id"]) == 32
    # Also on error responses produced inside the middleware.
    missing = client.get("/nowhere", headers={"X-Request-ID": "rid-404"})
    assert missing.headers["x-request-id"] == "rid-404"


def test_request_id_visible_in_handler_and_its_logs(client: TestClient,
                                                    log_records: Any) -> None:
    response = client.get("/fhir/Patient/1", headers={"X-Request-ID": "ctx-1"})
    assert response.json()["request_id"] == "ctx-1"
    assert client.app.state.seen["request_id"] == "ctx-1"  # type: ignore[attr-defined]
    inner = [r for r in log_records() if r["logger"] == "fhir_server.test"]
    assert inner and inner[0]["request_id"] == "ctx-1"
    assert current_request_id() is None  # nothing leaks out of the request


def test_quiet_routes_log_at_debug(client: TestClient, log_records: Any) -> None:
    client.get("/metrics")
    (line,) = _access(log_records())
    assert line["route"] == "/metrics" and line["level"] == "debug"


def test_text_format_renders_request_fields() -> None:
    formatter = logging.Formatter("%(levelname)s %(name)s [%(request_id)s] %(message)s",
                                  defaults={"request_id": "-"})
    logger = logging.getLogger("fhir_server.access")
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 0, "%s %s %s %.1fms client=%s",
        ("GET", "/fhir/{resource_type}/{id}", 200, 1.25, "-"), None, "access",
        {"request_id": "r1"})
    assert formatter.format(record) == (
        "INFO fhir_server.access [r1] GET /fhir/{resource_type}/{id} 200 1.2ms client=-")
    outside = logging.LogRecord("x", logging.INFO, __file__, 0, "hello", (), None)
    RequestIdFilter().filter(outside)
    assert formatter.format(outside) == "INFO x [-] hello"


async def _direct_call(app: Any, method: str = "GET") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": method, "path": "/x", "headers": []}, receive, send)
    return sent


def test_direct_asgi_cancel_and_silent_app() -> None:
    metrics = FhirMetrics()

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def cancelled(scope: Any, receive: Any, send: Any) -> None:
        raise asyncio.CancelledError

    asyncio.run(_direct_call(ObservabilityMiddleware(silent, metrics=metrics), "BREW"))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(_direct_call(ObservabilityMiddleware(cancelled, metrics=metrics)))
    text = metrics.exposition().decode()
    # No answer at all: the server sends a 500; unknown methods are bounded to OTHER.
    assert sample_value(text, "http_requests_total", method="OTHER", route="unmatched",
                        status_class="5xx") == 1
    # Cancelled before answering (client gone): 499, a 4xx.
    assert sample_value(text, "http_requests_total", method="GET", route="unmatched",
                        status_class="4xx") == 1


def test_lifespan_and_websocket_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    wrapped = ObservabilityMiddleware(app, metrics=FhirMetrics())
    asyncio.run(wrapped({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert seen == ["lifespan"]


def test_date_header_is_the_response_time_to_the_second(client: TestClient) -> None:
    import time
    from email.utils import parsedate_to_datetime

    from fhir_server.observability.middleware import date_header

    before = int(time.time())
    dates = client.get("/fhir/Patient/1").headers.get_list("date")
    after = int(time.time())
    assert len(dates) == 1
    assert before <= parsedate_to_datetime(dates[0]).timestamp() <= after
    assert date_header(1795000000) == (b"date", b"Wed, 18 Nov 2026 11:06:40 GMT")
