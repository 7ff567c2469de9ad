"""The pieces every store shares, and the local store and the sweep on a folder."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fhir_server.blobs import open_store
from fhir_server.blobs.local import LocalStore
from fhir_server.blobs.s3 import S3Store
from fhir_server.blobs.store import Digest, check_key, pieces
from fhir_server.blobs.sweep import sweep
from fhir_server.errors import PayloadTooLarge
from fhir_server.settings import load_settings


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def collect(source: AsyncIterator[bytes]) -> list[bytes]:
    return [piece async for piece in source]


def test_pieces_regroup_chunks_to_a_size() -> None:
    digest = Digest(100)
    got = asyncio.run(collect(pieces(stream(b"abc", b"defgh", b"ij"), 4, digest)))
    assert got == [b"abcd", b"efgh", b"ij"]
    assert digest.size == 10


def test_pieces_of_an_empty_body_is_one_empty_piece() -> None:
    assert asyncio.run(collect(pieces(stream(), 4, Digest(10)))) == [b""]


def test_pieces_refuse_past_the_limit() -> None:
    with pytest.raises(PayloadTooLarge, match="BINARY_MAX_BYTES"):
        asyncio.run(collect(pieces(stream(b"12345", b"6"), 4, Digest(5))))


def test_digest_names_the_content() -> None:
    digest = Digest(10)
    digest.update(b"abc")
    digest.size = 3
    blob = digest.blob()
    assert blob.key == "sha256/" + hashlib.sha256(b"abc").hexdigest()
    assert blob.sha1 == "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="  # Attachment.hash of "abc"


@pytest.mark.parametrize("key", ["sha256/../../etc/passwd", "sha256/ABC", "/tmp/x",
                                 "pending/../sha256", "sha256/" + "0" * 63])
def test_keys_are_checked(key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)


def test_local_store_round_trip(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)

    async def run() -> None:
        data = os.urandom(3 * 1024 * 1024 + 5)
        blob = await store.put(stream(data[:1000], data[1000:]), len(data))
        assert blob.size == len(data)
        path = tmp_path / "sha256" / blob.key[7:9] / blob.key[7:]
        assert path.read_bytes() == data
        assert list((tmp_path / "pending").iterdir()) == []
        assert b"".join(await collect(await store.open(blob.key, 5, 10))) == data[5:15]
        assert b"".join(await collect(await store.open(blob.key))) == data
    asyncio.run(run())


def test_local_store_refusal_leaves_no_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(PayloadTooLarge):
        asyncio.run(store.put(stream(b"x" * 10), 9))
    assert list((tmp_path / "pending").iterdir()) == []
    assert list((tmp_path / "sha256").iterdir()) == []


def test_sweep_keeps_young_and_referenced_objects(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)

    async def run() -> None:
        kept = await store.put(stream(b"kept"), 10)
        orphan = await store.put(stream(b"orphan"), 10)
        (tmp_path / "pending" / ("a" * 32)).write_bytes(b"half an upload")
        asked: list[str] = []

        async def referenced(keys: Sequence[str]) -> set[str]:
            asked.extend(keys)
            return {kept.key} & set(keys)

        assert await sweep(store, referenced, 60) == 0
        later = datetime.now(UTC) + timedelta(minutes=2)
        assert await sweep(store, referenced, 60, now=later) == 2
        assert sorted(asked) == sorted([kept.key, orphan.key])
        assert [i.key async for i in store.objects()] == [kept.key]
    asyncio.run(run())


def test_open_store_follows_the_settings(tmp_path: Path) -> None:
    local = open_store(load_settings({"DATA_DIR": str(tmp_path)}, env_file=None))
    assert isinstance(local, LocalStore) and local.root == tmp_path / "blobs"
    s3 = open_store(load_settings({"S3_BUCKET": "docs", "S3_ENDPOINT_URL": "http://s3:9000",
                                   "AWS_REGION": "eu-west-1"}, env_file=None))
    assert isinstance(s3, S3Store) and s3.bucket == "docs"
    assert s3.client.meta.endpoint_url == "http://s3:9000"
    assert s3.client.meta.region_name == "eu-west-1"
