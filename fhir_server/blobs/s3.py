"""Objects in a bucket of any S3 API (AWS S3, MinIO, Ceph, moto) through boto3.

boto3 is synchronous: every call runs in a thread, and bodies stream through in pieces
(a multipart upload of ``PART_BYTES`` parts for a large body, one ``PutObject`` for a
small one), so no object is ever wholly in memory. An S3 write is durable when the call
returns; the body goes to ``pending/<random>`` first and is copied to its content key
once its digest is known.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from fhir_server.blobs.store import (
    CONTENT_PREFIX,
    PENDING_PREFIX,
    BlobInfo,
    Digest,
    StoredBlob,
    check_key,
    pieces,
)
from fhir_server.errors import FhirError, ServiceUnavailable

#: size of one part of a multipart upload (S3's least is 5 MiB but for the last)
PART_BYTES = 8 * 1024 * 1024
#: bytes per read of a download
CHUNK = 1024 * 1024


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(f"object storage is unavailable: {exc}")


class S3Store:
    """A BlobStore on one bucket."""

    def __init__(self, bucket: str, endpoint_url: str = "", region: str = "",
                 client: Any = None) -> None:
        self.bucket = bucket
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None,
            # SigV4 everywhere: presigned URLs too (every region takes it; v2 is retired)
            config=Config(retries={"max_attempts": 5, "mode": "standard"},
                          max_pool_connections=32, signature_version="s3v4"))

    async def _call(self, name: str, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self.client, name), Bucket=self.bucket,
                                           **kwargs)
        except BotoCoreError as exc:
            raise _unavailable(exc) from None

    async def put(self, chunks: AsyncIterable[bytes], max_bytes: int) -> StoredBlob:
        """Upload to ``pending/`` (multipart when large), then copy to the content key."""
        pending = PENDING_PREFIX + uuid.uuid4().hex
        digest = Digest(max_bytes)
        upload: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for piece in pieces(chunks, PART_BYTES, digest):
                await asyncio.to_thread(digest.update, piece)
                if upload is None and len(piece) < PART_BYTES:  # the whole body
                    await self._call("put_object", Key=pending, Body=piece)
                    break
                if upload is None:
                    started = await self._call("create_multipart_upload", Key=pending)
                    upload = str(started["UploadId"])
                answer = await self._call("upload_part", Key=pending, UploadId=upload,
                                          PartNumber=len(parts) + 1, Body=piece)
                parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})
            if upload is not None:
                await self._call("complete_multipart_upload", Key=pending, UploadId=upload,
                                 MultipartUpload={"Parts": parts})
                upload = None
            blob = digest.blob()
            # Copying over an object of the same content renews its LastModified, which
            # the sweep reads: an orphan written again is young again.
            await asyncio.to_thread(self.client.copy, {"Bucket": self.bucket, "Key": pending},
                                    self.bucket, blob.key)
            await self._call("delete_object", Key=pending)
            return blob
        except BaseException as exc:
            await asyncio.shield(self._abandon(pending, upload))
            if isinstance(exc, ClientError):
                raise _unavailable(exc) from None
            raise

    async def _abandon(self, pending: str, upload: str | None) -> None:
        """Undo a failed upload as far as S3 lets us (the sweep removes the rest)."""
        try:
            if upload is not None:
                await self._call("abort_multipart_upload", Key=pending, UploadId=upload)
            await self._call("delete_object", Key=pending)
        except (ClientError, ServiceUnavailable):
            pass

    async def open(self, key: str, start: int = 0, length: int | None = None
                   ) -> AsyncIterator[bytes]:
        """A ranged GetObject; its body is read in chunks as it is consumed."""
        check_key(key)
        extra: dict[str, Any] = {}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            extra["Range"] = f"bytes={start}-{end}"
        try:
            answer = await self._call("get_object", Key=key, **extra)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FhirError(f"the object {key} is missing from the bucket") from None
            raise _unavailable(exc) from None
        return _read(answer["Body"])

    async def objects(self) -> AsyncIterator[BlobInfo]:
        """Every object under the content and pending prefixes, a page at a time, and
        the multipart uploads a crash left unfinished (as their pending keys)."""
        for key, initiated in await self._uploads(PENDING_PREFIX):
            yield BlobInfo(key, initiated)
        for prefix in (PENDING_PREFIX, CONTENT_PREFIX):
            token: str | None = None
            while True:
                extra = {"ContinuationToken": token} if token else {}
                try:
                    page = await self._call("list_objects_v2", Prefix=prefix, **extra)
                except ClientError as exc:
                    raise _unavailable(exc) from None
                for item in page.get("Contents", ()):
                    yield BlobInfo(item["Key"], item["LastModified"])
                token = page.get("NextContinuationToken")
                if not token:
                    break

    async def delete(self, key: str) -> None:
        """DeleteObject (S3 answers the same for an object that is gone); a pending key's
        unfinished multipart uploads are aborted too."""
        check_key(key)
        try:
            if key.startswith(PENDING_PREFIX):
                for _, upload in await self._uploads(key, ids=True):
                    await self._call("abort_multipart_upload", Key=key, UploadId=upload)
            await self._call("delete_object", Key=key)
        except ClientError as exc:
            raise _unavailable(exc) from None

    async def _uploads(self, prefix: str, ids: bool = False) -> list[tuple[str, Any]]:
        """Unfinished multipart uploads under ``prefix``: (key, initiated or upload id)."""
        found: list[tuple[str, Any]] = []
        extra: dict[str, Any] = {}
        while True:
            try:
                page = await self._call("list_multipart_uploads", Prefix=prefix, **extra)
            except ClientError as exc:
                raise _unavailable(exc) from None
            found += [(u["Key"], u["UploadId"] if ids else u["Initiated"])
                      for u in page.get("Uploads", ())]
            if not page.get("IsTruncated"):
                return found
            extra = {"KeyMarker": page["NextKeyMarker"],
                     "UploadIdMarker": page["NextUploadIdMarker"]}

    def presigned_url(self, key: str, seconds: int, content_type: str) -> str | None:
        """A presigned GetObject (computed locally: no call to the S3 API)."""
        check_key(key)
        url: str = self.client.generate_presigned_url(
            "get_object", ExpiresIn=seconds,
            Params={"Bucket": self.bucket, "Key": key, "ResponseContentType": content_type})
        return url

    async def close(self) -> None:
        """Close the client's connection pool."""
        await asyncio.to_thread(self.client.close)


async def _read(body: Any) -> AsyncIterator[bytes]:
    try:
        while True:
            piece = await asyncio.to_thread(body.read, CHUNK)
            if not piece:
                return
            yield piece
    finally:
        body.close()
