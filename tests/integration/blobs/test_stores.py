"""The object stores on a real S3 API (moto) and a local folder: content addressing,
streaming in pieces (multipart), ranges, failures leaving nothing, and the sweep of
orphans against the references of a real database."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from fhir_server.blobs.local import LocalStore
from fhir_server.blobs.s3 import PART_BYTES, S3Store
from fhir_server.blobs.store import BlobStore
from fhir_server.blobs.sweep import sweep
from fhir_server.errors import PayloadTooLarge
from fhir_server.storage.blobs import PgBlobReferences
from tests.integration.blobs.conftest import S3, serving

FHIR_JSON = "application/fhir+json"


@pytest.fixture(params=["s3", "local"])
def store(request: pytest.FixtureRequest, s3_store: S3Store,
          local_store: LocalStore) -> BlobStore:
    return s3_store if request.param == "s3" else local_store


def test_presigned_urls_read_s3_objects_only(store: BlobStore) -> None:
    async def run() -> str | None:
        blob = await store.put(chunks_of(b'{"resourceType":"Patient"}\n'), 10**6)
        return store.presigned_url(blob.key, 60, "application/fhir+ndjson")
    url = asyncio.run(run())
    if isinstance(store, LocalStore):
        assert url is None
        return
    assert url is not None
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert answer.content == b'{"resourceType":"Patient"}\n'
    assert answer.headers["content-type"] == "application/fhir+ndjson"


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def read_all(store: BlobStore, key: str, start: int = 0,
                   length: int | None = None) -> bytes:
    return b"".join([piece async for piece in await store.open(key, start, length)])


async def keys(store: BlobStore) -> list[str]:
    return sorted([info.key async for info in store.objects()])


def test_put_is_content_addressed(store: BlobStore) -> None:
    async def run() -> None:
        data = os.urandom(100_000)
        first = await store.put(chunks_of(data), 10**6)
        again = await store.put(chunks_of(data, 999), 10**6)
        assert first == again
        assert first.key == "sha256/" + hashlib.sha256(data).hexdigest()
        assert first.size == 100_000
        assert first.sha1 == base64.b64encode(hashlib.sha1(data).digest()).decode()
        assert await keys(store) == [first.key]  # a retried write leaves one object
        assert await read_all(store, first.key) == data
        assert await read_all(store, first.key, 10, 20) == data[10:30]
        assert await read_all(store, first.key, 99_990) == data[99_990:]
        await store.delete(first.key)
        await store.delete(first.key)  # gone already: no error
        assert await keys(store) == []
        await store.close()
    asyncio.run(run())


def test_empty_content(store: BlobStore) -> None:
    async def run() -> None:
        blob = await store.put(chunks_of(b""), 10)
        assert blob.size == 0
        assert await read_all(store, blob.key) == b""
    asyncio.run(run())


def test_large_content_streams_in_parts(s3_store: S3Store, s3: S3) -> None:
    async def run() -> None:
        data = os.urandom(2 * PART_BYTES + 12345)
        blob = await s3_store.put(chunks_of(data, 1024 * 1024), 10**9)
        head = s3.client().head_object(Bucket=s3.bucket, Key=blob.key)  # type: ignore[attr-defined]
        assert head["ContentLength"] == len(data)
        assert await read_all(s3_store, blob.key) == data
        assert s3.keys() == [blob.key]  # the pending upload is gone
    asyncio.run(run())


def test_too_large_leaves_nothing(store: BlobStore) -> None:
    async def run() -> None:
        with pytest.raises(PayloadTooLarge):
            await store.put(chunks_of(os.urandom(PART_BYTES + 10), 1024 * 1024),
                            PART_BYTES + 9)
        assert await keys(store) == []
    asyncio.run(run())


def test_an_interrupted_upload_leaves_nothing(store: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(PART_BYTES)
        yield os.urandom(1000)
        raise ConnectionError("the client went away")

    async def run() -> None:
        with pytest.raises(ConnectionError):
            await store.put(broken(), 10**9)
        assert await keys(store) == []
    asyncio.run(run())


def test_the_sweep_removes_orphans_only(store: BlobStore, migrated_url: str) -> None:
    async def run() -> None:
        async with AsyncConnectionPool(migrated_url, min_size=1, max_size=2,
                                       open=False) as pool:
            references = PgBlobReferences(pool)
            kept = await store.put(chunks_of(b"referenced"), 100)
            orphan = await store.put(chunks_of(b"orphan"), 100)
            async with pool.connection() as conn:
                binary = ('{"resourceType":"Binary","contentType":"text/plain","_data":'
                          '{"extension":[{"url":"http://fhir-server.dev/StructureDefinition/'
                          'binary-content","extension":[{"url":"key","valueString":"'
                          + kept.key + '"}]}]}}')
                await conn.execute(
                    "INSERT INTO resource_history (rid, resource_type, id, version_id,"
                    " last_updated, method, content) VALUES (0, 'Binary', %s, 1, now(),"
                    " 'POST', %s::jsonb)", (os.urandom(8).hex(), binary))
            # young objects are left alone: their Binary may be about to commit
            assert await sweep(store, references.referenced, 3600) == 0
            later = datetime.now(UTC) + timedelta(hours=2)
            assert await sweep(store, references.referenced, 3600, now=later) == 1
            assert await keys(store) == [kept.key]
            assert orphan.key != kept.key
    asyncio.run(run())


def test_a_failed_transaction_leaves_no_visible_object(blob_database: str, s3: S3) -> None:
    """The attachment's object is stored, the transaction then fails: no Binary and no
    DocumentReference exist, and the object is an orphan the sweep removes."""
    data = os.urandom(5000)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "DocumentReference"},
         "resource": {"resourceType": "DocumentReference", "status": "current",
                      "content": [{"attachment": {
                          "contentType": "application/pdf",
                          "data": base64.b64encode(data).decode()}}]}},
        {"request": {"method": "PUT", "url": "Patient/p1"},
         "resource": {"resourceType": "Patient", "id": "p1", "gender": "unknown-gender"}},
    ]}
    with serving(blob_database, ATTACHMENT_INLINE_MAX_BYTES="100", **s3.env) as server, \
            server.client() as client:
        answer = client.post("", json=bundle, headers={"Content-Type": FHIR_JSON})
        assert answer.status_code == 422, answer.text
        for rtype in ("Binary", "DocumentReference", "Patient"):
            found = client.get(rtype, params={"_summary": "count"}).json()
            assert found["total"] == 0, rtype
    key = "sha256/" + hashlib.sha256(data).hexdigest()
    assert s3.keys() == [key]  # stored before the commit that never came

    async def swept() -> int:
        async with AsyncConnectionPool(blob_database, min_size=1, max_size=2,
                                       open=False) as pool:
            store = S3Store(s3.bucket, client=s3.client())
            later = datetime.now(UTC) + timedelta(hours=2)
            return await sweep(store, PgBlobReferences(pool).referenced, 3600, now=later)
    assert asyncio.run(swept()) == 1
    assert s3.keys() == []


def test_restart_mid_upload_loses_nothing_acknowledged(blob_database: str, s3: S3) -> None:
    """An upload acknowledged before the server is killed is read back whole after the
    restart; the one cut off has no Binary, and its pending object is swept."""
    acknowledged = os.urandom(3 * 1024 * 1024)
    env = {**s3.env, "BLOB_ORPHAN_GRACE_SECONDS": "0", "BLOB_SWEEP_INTERVAL_SECONDS": "1"}
    with serving(blob_database, **env) as server, server.client() as client:
        answer = client.post("Binary", content=acknowledged,
                             headers={"Content-Type": "application/pdf"})
        assert answer.status_code == 201
        id = answer.headers["location"].split("/Binary/")[1].split("/")[0]
        before = client.get("Binary", params={"_summary": "count"}).json()["total"]

        def slow() -> Iterator[bytes]:
            yield os.urandom(PART_BYTES + 1024)
            for _ in range(100):  # until the server has sent the first part on
                if uploads(s3):
                    break
                time.sleep(0.1)
            server.stop(9)  # SIGKILL: no graceful anything
            yield b"x" * 1024  # never arrives

        with pytest.raises(httpx.HTTPError), httpx.Client(timeout=30) as other:
            other.post(f"{server.base}/Binary", content=slow(),
                       headers={"Content-Type": "application/pdf",
                                "Content-Length": str(PART_BYTES + 2048)})
        assert len(uploads(s3)) == 1  # the cut-off multipart upload
    with serving(blob_database, **env) as server, server.client() as client:
        assert client.get(f"Binary/{id}").content == acknowledged
        assert client.get("Binary", params={"_summary": "count"}).json()["total"] == before
        key = "sha256/" + hashlib.sha256(acknowledged).hexdigest()
        for _ in range(50):  # the sweep (every second here) aborts the cut-off upload
            if not uploads(s3):
                break
            time.sleep(0.2)
        assert uploads(s3) == []
        assert s3.keys() == [key]


def uploads(s3: S3) -> list[str]:
    """The multipart uploads in progress in the bucket."""
    answer = s3.client().list_multipart_uploads(Bucket=s3.bucket)  # type: ignore[attr-defined]
    return [u["Key"] for u in answer.get("Uploads", ())]
