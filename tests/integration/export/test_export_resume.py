"""An export whose server is killed mid-way is taken over after its lease expires by the
next server and finishes with every resource exactly once."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import orjson
import psycopg

from tests.conftest import running_server, start_server
from tests.integration.export.conftest import finish, kick_off, load

SMALL = {"EXPORT_BATCH_SIZE": "5", "EXPORT_FILE_LINES": "100", "EXPORT_LEASE_SECONDS": "2"}


def test_killed_export_resumes_and_writes_each_resource_once(scratch_url: str) -> None:
    proc, base = start_server(scratch_url, **SMALL)
    try:
        stored = load(base, 2000)
        status_url = kick_off(base, {"_type": "Patient"})
        job_id = int(status_url.rsplit("/", 1)[1])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # some files written, not all
            with psycopg.connect(scratch_url) as conn:
                row = conn.execute("SELECT jsonb_array_length(params->'outputs')"
                                   " FROM job WHERE id = %s", (job_id,)).fetchone()
            if row is not None and row[0] >= 2:
                break
            time.sleep(0.01)
    finally:
        proc.kill()  # no shutdown: the worker dies mid-file
        proc.wait(20)
    with psycopg.connect(scratch_url) as conn:
        row = conn.execute("SELECT status, processed FROM job WHERE id = %s",
                           (job_id,)).fetchone()
    assert row is not None and row[0] == "running" and row[1] < stored
    with running_server(scratch_url, **SMALL) as base2:
        manifest = finish(status_url.replace(base, base2))
        ids: Counter[str] = Counter()
        for output in manifest["output"]:
            url = output["url"].replace(base, base2)
            answer = httpx.get(url, timeout=60)
            assert answer.status_code == 200
            lines = answer.content.splitlines()
            assert len(lines) == output["count"] <= 100
            ids.update(orjson.loads(line)["id"] for line in lines)
    assert ids == Counter({f"p{p}": 1 for p in range(2000)})
