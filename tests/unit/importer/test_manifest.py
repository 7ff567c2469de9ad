"""A Bulk Data manifest as import input: the files it lists, local or downloaded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from fhir_server.importer.manifest import ManifestError, expand, read_manifest


def _write(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value))
    return path


def test_bundles_and_other_files_are_left_alone(tmp_path: Path) -> None:
    bundle = _write(tmp_path / "b.json", {"resourceType": "Bundle", "output": []})
    assert read_manifest(bundle) is None
    assert read_manifest(tmp_path / "missing.json") is None
    lines = tmp_path / "a.ndjson"
    lines.write_text("{}\n")
    assert expand([str(bundle), str(lines), str(tmp_path)], None, tmp_path) == [
        str(bundle), str(lines), str(tmp_path)]


def test_local_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    manifest = _write(tmp_path / "m.json", {"output": [
        {"type": "Patient", "url": "Patient-1.ndjson"},
        {"type": "Observation", "url": (tmp_path / "o.ndjson").as_uri()}]})
    assert expand([str(manifest)], None, tmp_path) == [
        str(tmp_path / "Patient-1.ndjson"), str(tmp_path / "o.ndjson")]


def test_an_output_without_url_or_with_another_scheme_is_refused(tmp_path: Path) -> None:
    for output in ({"type": "Patient"}, {"type": "Patient", "url": "ftp://x/y"}):
        manifest = _write(tmp_path / "m.json", {"output": [output]})
        with pytest.raises(ManifestError):
            expand([str(manifest)], None, tmp_path)


class _Files(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        if self.path != "/f/Patient-1.ndjson":
            self.send_error(404)
            return
        body = b'{"resourceType":"Patient","id":"a"}\n'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def files() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_remote_files_are_downloaded_with_the_token(tmp_path: Path, files: str) -> None:
    _Files.seen = []
    manifest = _write(tmp_path / "m.json", {"requiresAccessToken": True, "output": [
        {"type": "Patient", "url": f"{files}/f/Patient-1.ndjson"}]})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    [path] = expand([str(manifest)], "tok", scratch)
    assert Path(path).read_bytes() == b'{"resourceType":"Patient","id":"a"}\n'
    assert Path(path).name.endswith(".ndjson")
    assert _Files.seen == ["Bearer tok"]
    missing = _write(tmp_path / "n.json", {"output": [{"type": "P", "url": f"{files}/x"}]})
    with pytest.raises(ManifestError, match="404"):
        expand([str(missing)], None, scratch)
