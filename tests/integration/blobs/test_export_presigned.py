"""Bulk Data files as presigned S3 URLs (EXPORT_PRESIGNED_URL_SECONDS): the manifest
names the objects themselves, readable without a token; a local folder has no such
URLs, so its files stay served through the server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson

from tests.integration.blobs.conftest import S3, serving

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def _export(client: httpx.Client) -> dict[str, Any]:
    for n in range(3):
        answer = client.put(f"Patient/presigned-{n}", json={
            "resourceType": "Patient", "id": f"presigned-{n}"},
            headers={"Content-Type": "application/fhir+json"})
        assert answer.status_code in (200, 201), answer.text
    kick_off = client.get("$export", params={"_type": "Patient"}, headers=ASYNC)
    assert kick_off.status_code == 202, kick_off.text
    status = kick_off.headers["content-location"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = client.get(status)
        if answer.status_code == 200:
            return dict(answer.json())
        assert answer.status_code == 202, answer.text
        time.sleep(0.2)
    raise AssertionError("the export did not finish")


def test_manifest_names_presigned_objects(blob_database: str, s3: S3) -> None:
    with serving(blob_database, EXPORT_PRESIGNED_URL_SECONDS="300", **s3.env) as server, \
            server.client() as client:
        manifest = _export(client)
    assert manifest["requiresAccessToken"] is False
    [output] = manifest["output"]
    url = output["url"]
    parts = urlsplit(url)
    assert url.startswith(f"{s3.endpoint}/{s3.bucket}/sha256/")
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["300"]
    assert query["response-content-type"] == ["application/fhir+ndjson"]
    answer = httpx.get(url)  # no token, not through the server
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/fhir+ndjson"
    lines = [orjson.loads(line) for line in answer.content.splitlines()]
    assert len(lines) == output["count"]
    assert {f"presigned-{n}" for n in range(3)} <= {r["id"] for r in lines}


def test_a_local_folder_serves_files_through_the_server(blob_database: str,
                                                        tmp_path: Path) -> None:
    with serving(blob_database, EXPORT_PRESIGNED_URL_SECONDS="300",
                 DATA_DIR=str(tmp_path)) as server, server.client() as client:
        manifest = _export(client)
        [output] = manifest["output"]
        assert output["url"].startswith(f"{server.base}/_jobs/")
        answer = client.get(output["url"])
        assert answer.status_code == 200
        assert len(answer.content.splitlines()) == output["count"]
