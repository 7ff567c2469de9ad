"""``storage.bulk.create_many`` (``fhir_create_many``, V15) writes the rows of ``fhir_write``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import psycopg

from fhir_server.storage import bulk

T = TypeVar("T")


def run(url: str, body: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Run ``body`` on one connection in one transaction, then roll it back."""

    async def main() -> T:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            try:
                return await body(conn)
            finally:
                await conn.rollback()

    return asyncio.run(main())


def call(rtype: str, rid: str, method: str = "PUT", **fields: object) -> bulk.WriteCall:
    # meta.versionId and lastUpdated sent by a client are replaced, other meta kept
    content = {"resourceType": rtype, "id": "ignored", "meta": {
        "versionId": "9", "lastUpdated": "2001-01-01T00:00:00Z", "tag": [{"code": "t"}]},
        **fields}
    return bulk.WriteCall(rtype, rid, orjson.dumps(content).decode(), method, None)


async def _rows(conn: psycopg.AsyncConnection[Any], rtype: str,
                rid: str) -> tuple[Any, ...]:
    cur = await conn.execute(
        "SELECT r.version_id, r.deleted, r.content - 'meta',"
        " (r.content -> 'meta') - 'lastUpdated', r.content #>> '{meta,lastUpdated}',"
        " fhir_instant(r.last_updated), h.version_id, h.method, h.content IS NULL,"
        " h.last_updated = r.last_updated, h.rid = r.rid"
        " FROM resource r JOIN resource_history h USING (resource_type, id)"
        " WHERE r.resource_type = %s AND r.id = %s", (rtype, rid))
    rows = await cur.fetchall()
    assert len(rows) == 1
    return tuple(rows[0])


def test_new_resources_get_the_rows_of_fhir_write(migrated_url: str) -> None:
    tag = uuid.uuid4().hex[:10]

    async def body(conn: psycopg.AsyncConnection[Any]) -> None:
        calls = [call("Patient", f"{tag}-{n}", "PUT" if n % 2 else "POST", active=n > 1)
                 for n in range(4)]
        created = await bulk.create_many(conn, calls[:2])
        assert sorted(created) == [0, 1]
        assert all(r.outcome == "created" and r.version_id == 1 for r in created.values())
        answers = await bulk.write_many(conn, calls[2:])
        assert [a.outcome for a in answers] == ["created", "created"]
        assert created[0].rid is not None and created[1].rid is not None
        assert created[0].rid < created[1].rid  # in order, as one call after the other
        for mine, theirs in ((0, 2), (1, 3)):
            ours = await _rows(conn, "Patient", f"{tag}-{mine}")
            api = await _rows(conn, "Patient", f"{tag}-{theirs}")
            # same body (but the id and `active`), meta, version and history row
            assert ours[0:2] == api[0:2] == (1, False)
            assert ours[2] | {"id": "x", "active": 0} == api[2] | {"id": "x", "active": 0}
            assert ours[2]["id"] == f"{tag}-{mine}"
            assert ours[3] == api[3] == {"versionId": "1", "tag": [{"code": "t"}]}
            assert ours[4] == ours[5]  # meta.lastUpdated is the row's last_updated
            assert ours[6:] == api[6:] == (1, "POST" if mine == 0 else "PUT", True,
                                           True, True)

    run(migrated_url, body)


def test_existing_repeated_and_other_calls_are_left_out(migrated_url: str) -> None:
    tag = uuid.uuid4().hex[:10]

    async def body(conn: psycopg.AsyncConnection[Any]) -> None:
        await bulk.write_many(conn, [call("Patient", f"{tag}-old"),
                                     call("Patient", f"{tag}-gone")])
        await bulk.write_many(conn, [bulk.WriteCall("Patient", f"{tag}-gone", None,
                                                    "DELETE", None)])
        calls = [call("Patient", f"{tag}-old"), call("Patient", f"{tag}-gone"),
                 call("Patient", f"{tag}-new"), call("Patient", f"{tag}-new", active=True),
                 bulk.WriteCall("Patient", f"{tag}-del", None, "DELETE", None),
                 bulk.WriteCall("Patient", f"{tag}-ifm", call("Patient", "x").content,
                                "PUT", 1),
                 call("Patient", f"{tag}-patch", "PATCH")]
        created = await bulk.create_many(conn, calls)
        assert sorted(created) == [2]  # the first of the two new ones only
        cur = await conn.execute(
            "SELECT count(*) FROM resource_history WHERE id = ANY(%s)",
            ([f"{tag}-{x}" for x in ("old", "gone", "new", "del", "ifm", "patch")],))
        assert await cur.fetchone() == (4,)  # old 1, gone 2, new 1

    run(migrated_url, body)
