"""Object storage of Binary content (``store.BlobStore``): an S3 bucket when
``S3_BUCKET`` is set, else the folder ``DATA_DIR/blobs``."""

from __future__ import annotations

from fhir_server.blobs.store import BlobStore
from fhir_server.settings import Settings


def open_store(settings: Settings) -> BlobStore:
    """The store the settings name."""
    if settings.s3_bucket:
        from fhir_server.blobs.s3 import S3Store

        return S3Store(settings.s3_bucket, settings.s3_endpoint_url, settings.aws_region)
    from fhir_server.blobs.local import LocalStore

    return LocalStore(settings.data_dir / "blobs")
