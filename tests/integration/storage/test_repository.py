"""PgRepository against a real PostgreSQL: versions, clocks, concurrency, history."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
import pytest

from fhir_server.errors import Conflict, PreconditionFailed
from fhir_server.paths import data_dir
from fhir_server.service.repository import HistoryQuery
from fhir_server.settings import load_settings
from fhir_server.storage.pool import make_pool
from fhir_server.storage.repository import PgRepository

T = TypeVar("T")


def run(migrated_url: str, body: Callable[[PgRepository], Awaitable[T]]) -> T:
    """Run ``body`` with a repository on its own pool inside a fresh event loop."""

    async def main() -> T:
        settings = load_settings({"DATABASE_URL": migrated_url, "DB_POOL_MAX": "8"},
                                 env_file=None)
        pool = make_pool(settings)
        await pool.open(wait=True)
        try:
            return await body(PgRepository(pool, data_dir("migrations")))
        finally:
            await pool.close()

    return asyncio.run(main())


def text(rid: str, **fields: object) -> str:
    return orjson.dumps({"resourceType": "Patient", "id": rid, **fields}).decode()


def new_id() -> str:
    return f"repo-{uuid.uuid4().hex[:12]}"


def test_versions_and_meta(migrated_url: str) -> None:
    rid = new_id()

    async def body(repo: PgRepository) -> None:
        first = await repo.write("Patient", rid, text(rid, active=True), "PUT")
        assert first.outcome == "created"
        assert first.version is not None and first.version.version_id == 1
        second = await repo.write("Patient", rid, text(rid, active=False), "PUT")
        assert second.outcome == "updated"
        assert second.version is not None and second.version.version_id == 2
        assert second.version.last_updated > first.version.last_updated
        stored = orjson.loads(second.version.content or "")
        assert stored["meta"] == {"versionId": "2",
                                  "lastUpdated": stored["meta"]["lastUpdated"]}
        current = await repo.read("Patient", rid)
        assert current is not None and current.content == second.version.content
        old = await repo.vread("Patient", rid, 1)
        assert old is not None and old.content == first.version.content
        assert await repo.vread("Patient", rid, 3) is None

    run(migrated_url, body)


def test_post_to_taken_id_conflicts_and_if_match(migrated_url: str) -> None:
    rid = new_id()

    async def body(repo: PgRepository) -> None:
        await repo.write("Patient", rid, text(rid), "POST")
        with pytest.raises(Conflict):
            await repo.write("Patient", rid, text(rid), "POST")
        with pytest.raises(PreconditionFailed):
            await repo.write("Patient", rid, text(rid, active=True), "PUT", if_match=2)
        ok = await repo.write("Patient", rid, text(rid, active=True), "PUT", if_match=1)
        assert ok.version is not None and ok.version.version_id == 2

    run(migrated_url, body)


def test_concurrent_updates_get_distinct_versions(migrated_url: str) -> None:
    rid = new_id()

    async def body(repo: PgRepository) -> None:
        await repo.write("Patient", rid, text(rid), "PUT")
        results = await asyncio.gather(*[
            repo.write("Patient", rid, text(rid, birthDate=f"2000-01-{n + 1:02d}"), "PUT")
            for n in range(20)
        ])
        versions = sorted(r.version.version_id for r in results if r.version)
        assert versions == list(range(2, 22))
        page = await repo.history(HistoryQuery("Patient", rid, count=100))
        assert [v.version_id for v in page.entries] == list(range(21, 0, -1))
        stamps = [v.last_updated for v in page.entries]
        assert stamps == sorted(stamps, reverse=True)
        assert len(set(stamps)) == len(stamps)

    run(migrated_url, body)


def test_concurrent_creates_of_one_id_store_one_version_one(migrated_url: str) -> None:
    """One PUT wins the create; the others become later versions, never a 409."""

    async def body(repo: PgRepository) -> None:
        for _ in range(3):  # the race is not hit every time: try a few ids
            rid_n = new_id()
            outcomes = await asyncio.gather(*[
                repo.write("Patient", rid_n, text(rid_n, birthDate=f"2000-01-{n + 1:02d}"),
                           "PUT") for n in range(8)])
            assert sorted(o.outcome for o in outcomes) == ["created"] + ["updated"] * 7
            versions = sorted(o.version.version_id for o in outcomes if o.version)
            assert versions == list(range(1, 9))
        page = await repo.history(HistoryQuery("Patient", rid_n, count=100))
        assert [v.version_id for v in page.entries] == list(range(8, 0, -1))

    run(migrated_url, body)


def test_delete_and_history_paging(migrated_url: str) -> None:
    rid = new_id()

    async def body(repo: PgRepository) -> None:
        for n in range(5):
            await repo.write("Patient", rid, text(rid, multipleBirthInteger=n), "PUT")
        deleted = await repo.write("Patient", rid, None, "DELETE")
        assert deleted.outcome == "deleted"
        again = await repo.write("Patient", rid, None, "DELETE")
        assert again.outcome == "absent"
        tomb = await repo.read("Patient", rid)
        assert tomb is not None and tomb.deleted and tomb.content is None
        seen: list[int] = []
        cursor = None
        while True:
            page = await repo.history(HistoryQuery("Patient", rid, count=2, cursor=cursor))
            seen += [v.version_id for v in page.entries]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == [6, 5, 4, 3, 2, 1]

    run(migrated_url, body)


def test_readiness(migrated_url: str) -> None:
    async def body(repo: PgRepository) -> None:
        state = await repo.readiness()
        assert state.database is True
        assert state.migrations == "up to date"

    run(migrated_url, body)
