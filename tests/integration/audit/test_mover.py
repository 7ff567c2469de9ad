"""The mover: staged events become resources exactly once, with several movers at once;
a failed move leaves its events staged; the group writer stages a batch in one go."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fhir_server.audit.builder import Facts, Target, build
from fhir_server.audit.index import EventIndexer
from fhir_server.audit.mover import Mover
from fhir_server.audit.writer import GroupWriter, Record, insert
from fhir_server.definitions import Definitions
from fhir_server.paths import data_dir
from fhir_server.runtime import build_search
from fhir_server.settings import load_settings
from fhir_server.storage.admin import apply_migrations
from fhir_server.storage.pool import make_pool
from tests.conftest import scratch_database

pytestmark = pytest.mark.xdist_group("audit-mover")


@pytest.fixture(scope="module")
def url(database_url: str) -> Iterator[str]:
    with scratch_database(database_url, "mover") as scratch:
        apply_migrations(scratch, data_dir("migrations"))
        yield scratch


@pytest.fixture(scope="module")
def indexer() -> EventIndexer:
    settings = load_settings(env={}, env_file=None)
    profiles = data_dir("profiles")
    search = build_search(settings, Definitions.load(profiles), profiles)
    return EventIndexer(search.indexer, search.registry)


def _record(request_id: str, n: int) -> Record:
    id = str(uuid.uuid4())
    facts = Facts("read", 200, request_id, "http://test/fhir", address="127.0.0.1",
                  targets=[Target("Patient", f"p{n}", 1)], patients=[f"p{n}"])
    return Record(id, build(facts, id))


def _count(url: str, query: str, *params: Any) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def _run(url: str, body: Any) -> Any:
    async def main() -> Any:
        settings = load_settings({"DATABASE_URL": url, "DB_POOL_MAX": "6"}, env_file=None)
        pool = make_pool(settings)
        await pool.open(wait=True)
        try:
            return await body(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


def test_two_movers_move_each_event_once(url: str, indexer: EventIndexer) -> None:
    request_id = f"mv-{uuid.uuid4().hex}"
    records = [_record(request_id, n) for n in range(1_000)]

    async def body(pool: Any) -> list[int]:
        writer = GroupWriter(pool)
        await asyncio.gather(*(writer.store(records[i:i + 50])
                               for i in range(0, len(records), 50)))
        await writer.stop()
        movers = [Mover(pool, indexer, batch=64), Mover(pool, indexer, batch=64)]
        return list(await asyncio.gather(*(m.drain(60) for m in movers)))

    moved = _run(url, body)
    assert sum(moved) == len(records)
    assert all(m > 0 for m in moved), moved  # both took part
    assert _count(url, "SELECT count(*) FROM audit_staging") == 0
    ids = [r.id for r in records]
    assert _count(url, "SELECT count(*) FROM resource WHERE resource_type = 'AuditEvent'"
                       " AND id = ANY(%s)", ids) == len(records)
    assert _count(url, "SELECT count(DISTINCT id) FROM resource_history"
                       " WHERE resource_type = 'AuditEvent' AND id = ANY(%s)", ids) == len(ids)
    # searchable: the index rows are there (entity:identifier is the request id)
    assert _count(url, "SELECT count(DISTINCT rid) FROM idx_token t WHERE t.rid IN"
                       " (SELECT rid FROM resource WHERE id = ANY(%s))", ids) == len(ids)


def test_a_failed_move_leaves_its_events_staged(url: str, indexer: EventIndexer) -> None:
    records = [_record(f"mv-{uuid.uuid4().hex}", n) for n in range(3)]

    class Broken(EventIndexer):
        def rows(self, event: dict[str, Any]) -> Any:
            raise RuntimeError("indexing failed")

    async def body(pool: Any) -> int:
        async with pool.connection() as conn:
            await insert(conn, records)
        with pytest.raises(RuntimeError):
            await Mover(pool, Broken(indexer._indexer)).move_once()
        staged = await Mover(pool, indexer).backlog()
        assert staged[0] == len(records)
        return await Mover(pool, indexer).drain(30)

    assert _run(url, body) == len(records)
    assert _count(url, "SELECT count(*) FROM resource WHERE resource_type = 'AuditEvent'"
                       " AND id = ANY(%s)", [r.id for r in records]) == len(records)


def test_a_staged_event_rolls_back_with_its_transaction(url: str) -> None:
    record = _record(f"mv-{uuid.uuid4().hex}", 0)

    async def body(pool: Any) -> None:
        async with pool.connection() as conn:
            with pytest.raises(ZeroDivisionError):
                async with conn.transaction():
                    await insert(conn, [record])
                    raise ZeroDivisionError

    _run(url, body)
    assert _count(url, "SELECT count(*) FROM audit_staging WHERE event->>'id' = %s",
                  record.id) == 0
