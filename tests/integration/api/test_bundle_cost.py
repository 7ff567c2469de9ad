"""A transaction Bundle costs the same per entry however many entries it has.

A 10,000-entry transaction of plain creates once took minutes. What is counted here is
deterministic: the statements each entry sends to PostgreSQL, from the request's own
task (the audit mover's are its own); the Python CPU time is compared with a generous
bound only, the machine being shared.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from fhir_server.app import create_app
from fhir_server.settings import load_settings

#: set while the Bundle request runs: its statements are the ones counted
_COUNTING: ContextVar[bool] = ContextVar("counting", default=False)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The statements the counted request executes, as they are sent (real psycopg),
    and a marker for each transaction block it opens."""
    sent: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def counted(self: psycopg.AsyncCursor[Any], query: Any, *args: Any,
                      **kwargs: Any) -> Any:
        if _COUNTING.get():
            sent.append(query if isinstance(query, str) else query.as_string(self))
        return await execute(self, query, *args, **kwargs)

    def transaction(self: psycopg.AsyncConnection[Any], *args: Any, **kwargs: Any) -> Any:
        if _COUNTING.get():  # BEGIN, or a SAVEPOINT inside a transaction
            sent.append("-- transaction block")
        return opened(self, *args, **kwargs)

    opened = psycopg.AsyncConnection.transaction
    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted)
    monkeypatch.setattr(psycopg.AsyncConnection, "transaction", transaction)
    yield sent


def _transaction(n: int, offset: int) -> bytes:
    entries = [{"request": {"method": "POST", "url": "Patient"},
                "resource": {"resourceType": "Patient", "gender": "female",
                             "birthDate": "1990-01-01",
                             "name": [{"family": f"Cost{offset + i}", "given": ["A"]}]}}
               for i in range(n)]
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def test_transaction_cost_is_linear(migrated_url: str, statements: list[str]) -> None:
    settings = load_settings({"DATABASE_URL": migrated_url, "AUTH_MODE": "off"},
                             env_file=None)
    costs: dict[int, tuple[int, float]] = {}

    async def run() -> None:
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=transport, base_url="http://localhost", timeout=600) as client:
            for n in (50, 250, 1000):
                body = _transaction(n, len(costs) * 10_000)
                statements.clear()
                started = time.process_time()
                token = _COUNTING.set(True)
                try:
                    answer = await client.post("/fhir", content=body, headers={
                        "Content-Type": "application/fhir+json", "Prefer": "return=minimal"})
                finally:
                    _COUNTING.reset(token)
                assert answer.status_code == 200, answer.text
                assert len(answer.json()["entry"]) == n
                costs[n] = (len(statements), time.process_time() - started)

    asyncio.run(run())
    # Per entry: its write; nothing that grows with the Bundle (the writes' audit events
    # are staged in one statement before the commit).
    per_entry = (costs[1000][0] - costs[250][0]) / 750
    assert per_entry == (costs[250][0] - costs[50][0]) / 200 == 1
    writes = [s for s in statements if "fhir_write(" in s]
    assert len(writes) == 1000
    # the writes' events, staged at the commit, and the Bundle's own event
    assert sum(1 for s in statements if "audit_staging" in s) == 2
    # One database transaction, no savepoint per write.
    assert statements.count("-- transaction block") == 1
    # 4x the entries: well under 5x the Python time (measured: about 4x).
    assert costs[1000][1] / costs[250][1] < 5.5
