"""The mover's pieces that need no database: the payload, the early wake, the gauge."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson

from fhir_server.audit import mover
from fhir_server.audit.index import EventIndexer
from fhir_server.audit.mover import Indexed, Mover, payload
from fhir_server.observability.metrics import FhirMetrics


def test_payload_is_what_fhir_audit_write_reads() -> None:
    rows = {"token": [{"p": "action", "code": "R"}]}
    out = orjson.loads(payload([Indexed("a", {"resourceType": "AuditEvent", "id": "a"},
                                        rows), Indexed("b", {"id": "b"}, {})]))
    assert out == [{"id": "a", "content": {"resourceType": "AuditEvent", "id": "a"},
                    "index": rows}, {"id": "b", "content": {"id": "b"}, "index": None}]


def test_many_staged_events_wake_the_mover() -> None:
    async def body() -> None:
        m = Mover(cast(Any, None), cast(EventIndexer, None))
        m.staged(mover.EARLY - 1)
        assert not m._wake.is_set()
        m.staged(1)
        assert m._wake.is_set()

    asyncio.run(body())


def test_backlog_gauges() -> None:
    metrics = FhirMetrics()
    metrics.audit_staged.set(12)
    metrics.audit_staged_age.set(0.4)
    text = metrics.exposition().decode()
    assert "fhir_audit_staged_events 12.0" in text
    assert "fhir_audit_staged_oldest_seconds 0.4" in text
