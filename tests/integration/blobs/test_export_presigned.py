"""Bulk Data files as presigned S3 URLs (EXPORT_PRESIGNED_URL_SECONDS): the manifest
names the objects themselves, readable without a token; a local folder has no such
URLs, so its files stay served through the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson

from tests.integration.blobs.conftest import S3, Server, serving
from tests.integration.export.conftest import finish, kick_off


def _export(server: Server) -> dict[str, Any]:
    with server.client() as client:
        for n in range(3):
            answer = client.put(f"Patient/presigned-{n}", json={
                "resourceType": "Patient", "id": f"presigned-{n}"},
                headers={"Content-Type": "application/fhir+json"})
            assert answer.status_code in (200, 201), answer.text
    return finish(kick_off(server.root, {"_type": "Patient"}))


def test_manifest_names_presigned_objects(blob_database: str, s3: S3) -> None:
    with serving(blob_database, EXPORT_PRESIGNED_URL_SECONDS="300", **s3.env) as server:
        manifest = _export(server)
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
                 DATA_DIR=str(tmp_path)) as server:
        manifest = _export(server)
        [output] = manifest["output"]
        assert output["url"].startswith(f"{server.base}/_jobs/")
        answer = httpx.get(output["url"])
        assert answer.status_code == 200
        assert len(answer.content.splitlines()) == output["count"]
