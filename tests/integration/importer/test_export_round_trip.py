"""An export from one server imports into an empty one unchanged: from its manifest
(files downloaded over HTTP) and from a folder of its NDJSON files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import running_server
from tests.integration.export.conftest import finish, kick_off, load
from tests.integration.importer.conftest import run_import


def _resources(url: str) -> dict[tuple[str, str], Any]:
    """Current resources by (type, id), content without the server's own meta; not the
    audit trail (an export leaves it out unless _type names it)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT resource_type, id, content FROM resource"
                            " WHERE NOT deleted AND resource_type <> 'AuditEvent'").fetchall()
    out: dict[tuple[str, str], Any] = {}
    for rtype, rid, content in rows:
        meta = content.get("meta", {})
        meta.pop("versionId", None)
        meta.pop("lastUpdated", None)
        if not meta:
            content.pop("meta", None)
        out[(rtype, rid)] = content
    return out


@pytest.mark.parametrize("source", ["manifest", "folder"])
def test_export_imports_unchanged(make_db: Callable[..., str], tmp_path: Path,
                                  source: str) -> None:
    origin = make_db()
    with running_server(origin) as base:
        stored = load(base, 60, observations=4)  # 300 resources
        manifest = finish(kick_off(base))
        assert sum(o["count"] for o in manifest["output"]) == stored
        if source == "manifest":
            path = tmp_path / "manifest.json"
            path.write_text(json.dumps(manifest))
        else:
            path = tmp_path / "export"
            path.mkdir()
            for n, output in enumerate(manifest["output"]):
                answer = httpx.get(output["url"], timeout=60)
                (path / f"{n}-{output['type']}.ndjson").write_bytes(answer.content)
        target = make_db()
        result = run_import(target, path, tmp_path=tmp_path)
    assert result.status == 0, result.stderr
    exported = _resources(origin)
    assert len(exported) == stored
    assert _resources(target) == exported
