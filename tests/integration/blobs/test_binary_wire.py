"""Binary over HTTP against real object storage (moto's S3 API, and a local folder):
raw upload and download, ranges, Accept negotiation, JSON Binaries and attachments
moved to storage, size limits."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.blobs.conftest import S3, Server, serving

FHIR_JSON = "application/fhir+json"
PDF = "application/pdf"


@pytest.fixture(scope="module", params=["s3", "local"])
def backend(request: pytest.FixtureRequest, moto_endpoint: str,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a server on a new bucket, or on a new local folder."""
    if request.param == "s3":
        bucket = f"wire-{os.urandom(6).hex()}"
        s3 = S3(moto_endpoint, bucket)
        s3.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        return s3.env
    return {"DATA_DIR": str(tmp_path_factory.mktemp("data"))}


@pytest.fixture(scope="module")
def server(blob_database: str, backend: dict[str, str]) -> Iterator[Server]:
    """A server on the module's database and the backend, with small inline limits."""
    with serving(blob_database, BINARY_INLINE_MAX_BYTES="1000",
                 ATTACHMENT_INLINE_MAX_BYTES="100", **backend) as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def pdf_bytes(size: int) -> bytes:
    """``size`` bytes starting like a PDF."""
    head = b"%PDF-1.7\n"
    return head + os.urandom(size - len(head))


def upload(client: httpx.Client, data: bytes, media: str = PDF,
           **headers: str) -> str:
    """POST raw content; the new Binary's id."""
    answer = client.post("Binary", content=data, headers={"Content-Type": media, **headers})
    assert answer.status_code == 201, answer.text
    location = answer.headers["location"]
    assert "/_history/1" in location
    return location.split("/Binary/")[1].split("/")[0]


def outcome_code(answer: httpx.Response) -> str:
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome", body
    return str(body["issue"][0]["code"])


def test_raw_upload_then_download(client: httpx.Client) -> None:
    data = pdf_bytes(5000)
    id = upload(client, data)
    answer = client.get(f"Binary/{id}")
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["content-type"] == PDF
    assert answer.headers["content-length"] == "5000"
    assert answer.headers["etag"] == 'W/"1"'
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert client.get(f"Binary/{id}", headers={"Accept": PDF}).content == data
    assert client.get(f"Binary/{id}", headers={"Accept": "*/*"}).content == data
    head = client.head(f"Binary/{id}")
    assert (head.status_code, head.headers["content-length"], head.content) == (
        200, "5000", b"")


def test_fhir_json_of_a_large_binary_names_its_content(client: httpx.Client,
                                                       server: Server) -> None:
    data = pdf_bytes(5000)
    id = upload(client, data, **{"X-Security-Context": "Patient/p1"})
    answer = client.get(f"Binary/{id}", headers={"Accept": FHIR_JSON})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    binary = answer.json()
    assert binary["contentType"] == PDF
    assert binary["securityContext"] == {"reference": "Patient/p1"}
    assert "data" not in binary  # 5000 bytes > BINARY_INLINE_MAX_BYTES
    parts = {e["url"]: e for e in binary["_data"]["extension"][0]["extension"]}
    assert parts["size"]["valueUnsignedInt"] == 5000
    assert parts["key"]["valueString"] == "sha256/" + hashlib.sha256(data).hexdigest()
    assert parts["hash"]["valueBase64Binary"] == base64.b64encode(
        hashlib.sha1(data).digest()).decode()
    assert parts["url"]["valueUrl"] == f"{server.base}/Binary/{id}"
    assert client.get(parts["url"]["valueUrl"]).content == data


def test_fhir_json_of_a_small_binary_is_inline(client: httpx.Client) -> None:
    id = upload(client, b"hello", "text/plain")
    binary = client.get(f"Binary/{id}", params={"_format": "json"}).json()
    assert base64.b64decode(binary["data"]) == b"hello"
    raw = client.get(f"Binary/{id}")
    assert (raw.content, raw.headers["content-type"]) == (b"hello", "text/plain")


def test_accept_that_takes_neither_is_406(client: httpx.Client) -> None:
    id = upload(client, pdf_bytes(100))
    answer = client.get(f"Binary/{id}", headers={"Accept": "image/png"})
    assert answer.status_code == 406
    assert outcome_code(answer) == "not-supported"
    answer = client.get(f"Binary/{id}", params={"_format": "ttl"})
    assert answer.status_code == 406


def test_range_requests(client: httpx.Client) -> None:
    data = pdf_bytes(10_000)
    id = upload(client, data)
    answer = client.get(f"Binary/{id}", headers={"Range": "bytes=100-199"})
    assert answer.status_code == 206
    assert answer.content == data[100:200]
    assert answer.headers["content-range"] == "bytes 100-199/10000"
    assert answer.headers["content-length"] == "100"
    tail = client.get(f"Binary/{id}", headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, data[-10:])
    rest = client.get(f"Binary/{id}", headers={"Range": "bytes=9990-"})
    assert (rest.status_code, rest.content) == (206, data[9990:])
    past = client.get(f"Binary/{id}", headers={"Range": "bytes=10000-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == "bytes */10000"
    assert outcome_code(past) == "invalid"
    several = client.get(f"Binary/{id}", headers={"Range": "bytes=0-1,5-6"})
    assert (several.status_code, several.content) == (200, data)  # may be ignored
    weak = client.get(f"Binary/{id}", headers={"Range": "bytes=0-9", "If-Range": 'W/"1"'})
    assert (weak.status_code, weak.content) == (200, data)  # If-Range takes strong tags


def test_put_raw_makes_a_new_version(client: httpx.Client) -> None:
    id = upload(client, b"one", "text/plain")
    answer = client.put(f"Binary/{id}", content=b"two", headers={
        "Content-Type": "text/plain", "If-Match": 'W/"1"'})
    assert answer.status_code == 200, answer.text
    assert client.get(f"Binary/{id}").content == b"two"
    assert client.get(f"Binary/{id}/_history/1").content == b"one"
    stale = client.put(f"Binary/{id}", content=b"three", headers={
        "Content-Type": "text/plain", "If-Match": 'W/"1"'})
    assert stale.status_code == 412


def test_json_binary_with_large_data_moves_to_storage(client: httpx.Client) -> None:
    data = os.urandom(3000)
    answer = client.post("Binary", json={"resourceType": "Binary", "contentType": "image/png",
                                         "data": base64.b64encode(data).decode()},
                         headers={"Content-Type": FHIR_JSON, "Prefer": "return=representation"})
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert "data" not in stored
    parts = stored["_data"]["extension"][0]["extension"]
    assert parts[1] == {"url": "size", "valueUnsignedInt": 3000}
    raw = client.get(f"Binary/{stored['id']}")
    assert (raw.content, raw.headers["content-type"]) == (data, "image/png")


def test_json_binary_cannot_name_an_object_it_did_not_upload(client: httpx.Client) -> None:
    id = upload(client, pdf_bytes(3000))
    stolen = client.get(f"Binary/{id}", headers={"Accept": FHIR_JSON}).json()
    del stolen["id"]
    answer = client.post("Binary", json=stolen, headers={"Content-Type": FHIR_JSON})
    assert answer.status_code == 422
    assert outcome_code(answer) == "processing"


def test_small_json_binary_stays_inline(client: httpx.Client) -> None:
    answer = client.post("Binary", json={"resourceType": "Binary", "contentType": "text/plain",
                                         "data": base64.b64encode(b"tiny").decode()},
                         headers={"Content-Type": FHIR_JSON, "Prefer": "return=representation"})
    assert answer.status_code == 201
    assert base64.b64decode(answer.json()["data"]) == b"tiny"
    assert client.get(f"Binary/{answer.json()['id']}").content == b"tiny"


def document_reference(data: bytes, **attachment: Any) -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "status": "current",
            "content": [{"attachment": {"contentType": PDF, "title": "discharge letter",
                                        "data": base64.b64encode(data).decode(),
                                        **attachment}}]}


def test_document_reference_attachment_moves_to_a_binary(client: httpx.Client) -> None:
    data = pdf_bytes(4000)
    answer = client.post("DocumentReference", json=document_reference(data),
                         headers={"Content-Type": FHIR_JSON, "Prefer": "return=representation"})
    assert answer.status_code == 201, answer.text
    document = answer.json()
    attachment = document["content"][0]["attachment"]
    assert "data" not in attachment
    assert attachment["size"] == 4000
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    assert attachment["title"] == "discharge letter"
    assert attachment["url"].startswith("Binary/")
    content = client.get(attachment["url"])
    assert (content.status_code, content.content) == (200, data)
    binary = client.get(attachment["url"], headers={"Accept": FHIR_JSON}).json()
    assert binary["securityContext"] == {"reference": f"DocumentReference/{document['id']}"}


def test_small_attachment_stays_inline(client: httpx.Client) -> None:
    answer = client.post("DocumentReference", json=document_reference(b"short"),
                         headers={"Content-Type": FHIR_JSON, "Prefer": "return=representation"})
    assert answer.status_code == 201
    assert answer.json()["content"][0]["attachment"]["data"] == base64.b64encode(
        b"short").decode()


def test_attachment_hash_must_match_its_data(client: httpx.Client) -> None:
    answer = client.post("DocumentReference",
                         json=document_reference(pdf_bytes(500), hash="AAAA"),
                         headers={"Content-Type": FHIR_JSON})
    assert answer.status_code == 422
    assert outcome_code(answer) == "processing"


def test_binary_read_in_a_bundle_is_the_resource(client: httpx.Client) -> None:
    id = upload(client, b"entry", "text/plain")
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Binary/{id}"}}]}
    answer = client.post("", json=bundle, headers={"Content-Type": FHIR_JSON})
    entry = answer.json()["entry"][0]
    assert entry["response"]["status"].startswith("200")
    assert base64.b64decode(entry["resource"]["data"]) == b"entry"


def test_upload_and_download_of_50_mb_keep_memory_flat(server: Server,
                                                       tmp_path: Path) -> None:
    size = 50 * 1024 * 1024
    source = tmp_path / "big.pdf"
    digest = hashlib.sha256()
    with source.open("wb") as f:
        for _ in range(50):
            piece = os.urandom(1024 * 1024)
            digest.update(piece)
            f.write(piece)
    with server.client() as client:
        client.get("metadata")
        before = server.peak_rss_kib()

        def chunks() -> Iterator[bytes]:
            with source.open("rb") as f:
                while piece := f.read(256 * 1024):
                    yield piece

        answer = client.post("Binary", content=chunks(), headers={
            "Content-Type": PDF, "Content-Length": str(size)})
        assert answer.status_code == 201, answer.text
        id = answer.headers["location"].split("/Binary/")[1].split("/")[0]
        received = hashlib.sha256()
        count = 0
        with client.stream("GET", f"Binary/{id}", headers={"Accept": PDF}) as download:
            assert download.status_code == 200
            assert download.headers["content-length"] == str(size)
            for piece in download.iter_raw():
                received.update(piece)
                count += len(piece)
        assert count == size
        assert received.hexdigest() == digest.hexdigest()
        growth = server.peak_rss_kib() - before
    print(f"peak RSS growth for a 50 MiB upload and download: {growth} KiB")
    assert growth < 40 * 1024, f"peak RSS grew by {growth} KiB for a 50 MiB object"


def test_binary_larger_than_the_limit_is_413(blob_database: str,
                                              backend: dict[str, str]) -> None:
    with serving(blob_database, BINARY_MAX_BYTES="1000", ATTACHMENT_INLINE_MAX_BYTES="100",
                 **backend) as small, small.client() as client:
        stored = client.get("Binary", params={"_summary": "count"}).json()["total"]
        declared = client.post("Binary", content=b"x" * 1001,
                               headers={"Content-Type": PDF})
        assert declared.status_code == 413
        assert outcome_code(declared) == "too-long"

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b"x" * 600
            yield b"x" * 600

        streamed = client.post("Binary", content=chunked(), headers={"Content-Type": PDF})
        assert streamed.status_code == 413
        assert outcome_code(streamed) == "too-long"
        attached = client.post("DocumentReference", json=document_reference(b"y" * 1500),
                               headers={"Content-Type": FHIR_JSON})
        assert attached.status_code == 413
        assert outcome_code(attached) == "too-long"
        assert client.get("Binary", params={"_summary": "count"}).json()["total"] == stored
        assert upload(client, b"z" * 1000)  # at the limit exactly
