"""CachedRepository on real PostgreSQL and Redis: hits, invalidation, transactions, races."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from fhir_server.errors import PreconditionFailed
from fhir_server.service.repository import StoredVersion

from .harness import Replica, patient, replica
from .support import namespace, redis_url_or_skip

REDIS_URL = redis_url_or_skip()
pytestmark = pytest.mark.redis


def new_id() -> str:
    return f"cache-{uuid.uuid4().hex[:12]}"


def raw_entry(ns: str, rid: str) -> dict[bytes, bytes]:
    """The Redis hash of Patient/rid, straight from Redis."""
    with redis.Redis.from_url(REDIS_URL) as r:
        entry: dict[bytes, bytes] = r.hgetall(f"fhir:{ns}:res:Patient/{rid}")
        return entry


def run(pg_url: str, body: Callable[[Replica, str], Awaitable[Any]], **options: Any) -> Any:
    ns = namespace()

    async def main() -> Any:
        async with replica(pg_url, REDIS_URL, ns, **options) as rep:
            return await body(rep, ns)

    return asyncio.run(main())


def run_pair(pg_url: str, body: Callable[[Replica, Replica, str], Awaitable[Any]]) -> Any:
    """``run`` with two replicas (two "servers") sharing one Redis namespace."""
    ns = namespace()

    async def main() -> Any:
        async with replica(pg_url, REDIS_URL, ns) as first, \
                replica(pg_url, REDIS_URL, ns) as second:
            return await body(first, second, ns)

    return asyncio.run(main())


async def held_read_of_v1(reader: Replica, writer: Replica,
                          rid: str) -> asyncio.Task[StoredVersion | None]:
    """The writer stores v1; the reader's read of it, held once it has loaded v1."""
    await writer.cached.write("Patient", rid, patient(rid, active=True), "PUT")
    reader.spy.gate_reads = True
    slow = asyncio.create_task(reader.cached.read("Patient", rid))
    await reader.spy.loaded.wait()  # v1 is in the reader's hands
    return slow


def test_read_through_then_hit(pg_url: str) -> None:
    rid = new_id()

    async def body(rep: Replica, ns: str) -> None:
        written = await rep.cached.write("Patient", rid, patient(rid, active=True), "PUT")
        assert written.version is not None
        first = await rep.cached.read("Patient", rid)
        assert rep.spy.reads == 1
        assert raw_entry(ns, rid)[b"v"] == b"1" and b"d" in raw_entry(ns, rid)
        second = await rep.cached.read("Patient", rid)
        assert rep.spy.reads == 1  # served by Redis
        assert second == first == await rep.pg.read("Patient", rid)
        assert await rep.cached.read("Patient", "never-stored") is None

    run(pg_url, body)


def test_write_and_delete_invalidate(pg_url: str) -> None:
    rid = new_id()

    async def body(rep: Replica, ns: str) -> None:
        await rep.cached.write("Patient", rid, patient(rid, active=True), "PUT")
        await rep.cached.read("Patient", rid)
        await rep.cached.write("Patient", rid, patient(rid, active=False), "PUT")
        entry = raw_entry(ns, rid)
        assert b"d" not in entry and entry[b"v"] == b"2"  # floor raised, entry gone
        current = await rep.cached.read("Patient", rid)
        assert current is not None and current.version_id == 2
        assert rep.spy.reads == 2
        await rep.cached.write("Patient", rid, None, "DELETE")
        gone = await rep.cached.read("Patient", rid)
        assert gone is not None and gone.deleted and gone.version_id == 3
        assert gone.content is None
        assert await rep.cached.read("Patient", rid) == gone and rep.spy.reads == 3

    run(pg_url, body)


def test_refused_write_releases_the_entry(pg_url: str) -> None:
    rid = new_id()

    async def body(rep: Replica, ns: str) -> None:
        await rep.cached.write("Patient", rid, patient(rid), "PUT")
        await rep.cached.read("Patient", rid)
        with pytest.raises(PreconditionFailed):
            await rep.cached.write("Patient", rid, patient(rid, active=True), "PUT",
                                   if_match=7)
        assert b"p" not in raw_entry(ns, rid)  # the writer is no longer counted
        assert (await rep.cached.read("Patient", rid)).version_id == 1  # type: ignore[union-attr]
        await rep.cached.read("Patient", rid)
        assert rep.spy.reads == 2  # refilled at once, then a hit

    run(pg_url, body)


def test_transaction_commit_invalidates_rollback_does_not(pg_url: str) -> None:
    rid = new_id()

    async def body(rep: Replica, ns: str) -> None:
        await rep.cached.write("Patient", rid, patient(rid, active=True), "PUT")
        await rep.cached.read("Patient", rid)
        async with rep.cached.transaction() as tx:
            await tx.write("Patient", rid, patient(rid, active=False), "PUT")
            # Inside: the transaction sees its write, the others the committed version,
            # and none of them may put anything in the cache meanwhile.
            assert (await tx.read("Patient", rid)).version_id == 2  # type: ignore[union-attr]
            outside = await rep.cached.read("Patient", rid)
            assert outside is not None and outside.version_id == 1
            assert b"d" not in raw_entry(ns, rid)
        assert raw_entry(ns, rid)[b"v"] == b"2" and b"p" not in raw_entry(ns, rid)
        after = await rep.cached.read("Patient", rid)
        assert after is not None and after.version_id == 2
        assert (await rep.cached.read("Patient", rid)) == after  # filled: a hit

        reads = rep.spy.reads
        with pytest.raises(RuntimeError):
            async with rep.cached.transaction() as tx:
                await tx.write("Patient", rid, patient(rid, gender="male"), "PUT")
                raise RuntimeError("abort")
        entry = raw_entry(ns, rid)
        assert entry[b"v"] == b"2" and b"p" not in entry  # floor not raised, writer uncounted
        again = await rep.cached.read("Patient", rid)
        assert again is not None and again.version_id == 2 and again.content == after.content
        assert await rep.cached.read("Patient", rid) == again
        assert rep.spy.reads == reads + 1  # usable again at once: one refill, then hits

    run(pg_url, body)


def test_two_replicas_share_invalidation(pg_url: str) -> None:
    rid = new_id()

    async def body(a: Replica, b: Replica, ns: str) -> None:
        await a.cached.write("Patient", rid, patient(rid, active=True), "PUT")
        assert (await b.cached.read("Patient", rid)).version_id == 1  # type: ignore[union-attr]
        assert (await a.cached.read("Patient", rid)).version_id == 1  # type: ignore[union-attr]
        assert a.spy.reads == 0  # B's fill serves A
        await a.cached.write("Patient", rid, patient(rid, active=False), "PUT")
        seen = await b.cached.read("Patient", rid)
        assert seen is not None and seen.version_id == 2
        async with b.cached.transaction() as tx:
            await tx.write("Patient", rid, None, "DELETE")
        seen = await a.cached.read("Patient", rid)
        assert seen is not None and seen.deleted and seen.version_id == 3

    run_pair(pg_url, body)


def test_stale_fill_after_invalidation_is_refused(pg_url: str) -> None:
    """Reader loads v1, writer commits v2 and invalidates, reader then fills v1."""
    rid = new_id()

    async def body(reader: Replica, writer: Replica, ns: str) -> None:
        slow = await held_read_of_v1(reader, writer, rid)
        await writer.cached.write("Patient", rid, patient(rid, active=False), "PUT")
        reader.spy.release_read.set()
        old = await slow
        assert old is not None and old.version_id == 1  # it read before the write
        entry = raw_entry(ns, rid)
        assert b"d" not in entry and entry[b"v"] == b"2"  # ... but could not store it
        for rep in (reader, writer):
            now = await rep.cached.read("Patient", rid)
            assert now is not None and now.version_id == 2

    run_pair(pg_url, body)


def test_fill_during_a_write_is_refused(pg_url: str) -> None:
    """Reader loads v1; a writer has begun (not committed); the fill must not land."""
    rid = new_id()

    async def body(reader: Replica, writer: Replica, ns: str) -> None:
        slow_read = await held_read_of_v1(reader, writer, rid)
        writer.spy.gate_writes = True
        slow_write = asyncio.create_task(
            writer.cached.write("Patient", rid, patient(rid, active=False), "PUT"))
        await writer.spy.entered.wait()  # BEGIN done, database not yet written
        reader.spy.release_read.set()
        assert (await slow_read).version_id == 1  # type: ignore[union-attr]
        assert b"d" not in raw_entry(ns, rid)
        writer.spy.release_write.set()
        await slow_write
        now = await reader.cached.read("Patient", rid)
        assert now is not None and now.version_id == 2

    run_pair(pg_url, body)


def test_ambiguous_write_keeps_fills_out_for_pending_s(pg_url: str) -> None:
    """A write that committed but whose caller saw an error (as a crash after COMMIT)."""
    rid = new_id()

    async def body(rep: Replica, ns: str) -> None:
        await rep.cached.write("Patient", rid, patient(rid, active=True), "PUT")
        await rep.cached.read("Patient", rid)
        rep.spy.fail_after_write = True
        with pytest.raises(ConnectionResetError):
            await rep.cached.write("Patient", rid, patient(rid, active=False), "PUT")
        rep.spy.fail_after_write = False
        assert raw_entry(ns, rid)[b"p"] == b"1" and b"d" not in raw_entry(ns, rid)
        for _ in range(2):  # correct, but uncached while the writer's fate is unknown
            assert (await rep.cached.read("Patient", rid)).version_id == 2  # type: ignore[union-attr]
        assert b"d" not in raw_entry(ns, rid)
        await asyncio.sleep(1.1)
        reads = rep.spy.reads
        for _ in range(3):
            assert (await rep.cached.read("Patient", rid)).version_id == 2  # type: ignore[union-attr]
        assert rep.spy.reads == reads + 1 and b"p" not in raw_entry(ns, rid)

    run(pg_url, body, pending_s=1.0, max_fill_age_s=0.5)


def test_vread_is_cached_and_none_is_not(pg_url: str) -> None:
    rid = new_id()

    async def body(rep: Replica, ns: str) -> None:
        await rep.cached.write("Patient", rid, patient(rid, active=True), "PUT")
        await rep.cached.write("Patient", rid, patient(rid, active=False), "PUT")
        first = await rep.cached.vread("Patient", rid, 1)
        assert first == await rep.cached.vread("Patient", rid, 1) and rep.spy.vreads == 1
        assert first is not None and first.method == "PUT" and first.version_id == 1
        assert await rep.cached.vread("Patient", rid, 3) is None
        await rep.cached.write("Patient", rid, None, "DELETE")
        third = await rep.cached.vread("Patient", rid, 3)
        assert third is not None and third.deleted and third.method == "DELETE"
        assert await rep.cached.vread("Patient", rid, 3) == third and rep.spy.vreads == 3

    run(pg_url, body)


def test_invalidate_and_flush_for_writes_behind_its_back(pg_url: str) -> None:
    rid = new_id()

    async def body(rep: Replica, ns: str) -> None:
        await rep.cached.write("Patient", rid, patient(rid, active=True), "PUT")
        await rep.cached.read("Patient", rid)
        await rep.pg.write("Patient", rid, patient(rid, active=False), "PUT")  # a bulk load
        assert (await rep.cached.read("Patient", rid)).version_id == 1  # type: ignore[union-attr]
        assert await rep.cached.invalidate([("Patient", rid, 2)])
        assert (await rep.cached.read("Patient", rid)).version_id == 2  # type: ignore[union-attr]
        await rep.cached.vread("Patient", rid, 1)
        await rep.pg.write("Patient", rid, None, "DELETE")
        assert await rep.cached.flush()
        assert raw_entry(ns, rid) == {}
        assert (await rep.cached.read("Patient", rid)).deleted  # type: ignore[union-attr]

    run(pg_url, body)
