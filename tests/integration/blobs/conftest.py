"""A real S3 API for the tests (moto's server mode, in a thread of the test session),
object stores on it and on a local folder, and servers using either.

boto3 in the server processes finds moto through ``S3_ENDPOINT_URL`` and the dummy
credentials below, exactly as it would find MinIO or AWS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from fhir_server.blobs.local import LocalStore
from fhir_server.blobs.s3 import S3Store
from tests.conftest import _free_port, scratch_database, start_server

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"


@dataclass(frozen=True)
class S3:
    """The moto server's endpoint and a bucket of the test's."""

    endpoint: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """What a server process needs to use the bucket."""
        return {"S3_ENDPOINT_URL": self.endpoint, "S3_BUCKET": self.bucket,
                "AWS_REGION": REGION, **CREDENTIALS}

    def client(self) -> object:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def keys(self) -> list[str]:
        """Every object key in the bucket."""
        pages = self.client().get_paginator("list_objects_v2").paginate(  # type: ignore[attr-defined]
            Bucket=self.bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 API on a free loopback port, for the whole session."""
    for key, value in CREDENTIALS.items():
        os.environ.setdefault(key, value)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str) -> S3:
    """A new, empty bucket."""
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3 = S3(moto_endpoint, bucket)
    s3.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return s3


@pytest.fixture
def s3_store(s3: S3) -> S3Store:
    """An S3Store on the test's bucket, as the server builds it."""
    client = boto3.client("s3", endpoint_url=s3.endpoint, region_name=REGION,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return S3Store(s3.bucket, client=client)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    """A LocalStore in a folder of the test's."""
    return LocalStore(tmp_path / "blobs")


@dataclass
class Server:
    """A running server process and its FHIR base."""

    proc: subprocess.Popen[bytes]
    root: str
    database_url: str

    @property
    def base(self) -> str:
        return f"{self.root}/fhir"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60)

    def peak_rss_kib(self) -> int:
        """The worker's peak resident set (VmHWM), in KiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def serving(database_url: str, **env: str) -> Iterator[Server]:
    """A server on ``database_url`` with ``env``, stopped on exit."""
    proc, root = start_server(database_url, **env)
    server = Server(proc, root, database_url)
    try:
        yield server
    finally:
        if proc.poll() is None:
            server.stop()


@pytest.fixture(scope="module")
def blob_database(database_url: str) -> Iterator[str]:
    """A database of the module's own (its servers migrate it)."""
    with scratch_database(database_url, "blobs") as url:
        yield url
