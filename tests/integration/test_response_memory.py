"""A worker's memory under the largest pages (issue 11): a thousand resources of 200 KB
searched with ``_count=1000``, four searches at once, stay far below the chart's 1 GiB:
the page is cut at MAX_RESPONSE_BYTES, its rows fetched in batches and its Bundle sent
in pieces. Paging through with ``next`` still gives every resource once."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

from tests.conftest import scratch_database, start_server

RESOURCES = 1000
#: bytes of each resource's note (32 hex digits repeated: PostgreSQL compresses them on
#: disk, which makes loading quick, and sends them whole)
NOTE = 200_000
BOUND = 512 * 1024 * 1024
_LOAD = """
SELECT count(*) FROM generate_series(1, %(n)s) i, LATERAL fhir_write('Basic', 'big-' || i,
  jsonb_build_object('resourceType', 'Basic', 'id', 'big-' || i,
    'code', jsonb_build_object('text', 'big'),
    'extension', jsonb_build_array(jsonb_build_object('url', 'urn:test:note',
      'valueString', repeat(md5(i::text), %(parts)s)))), 'PUT')
"""


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert found is not None
    return int(found[1]) * 1024


def _ids(client: httpx.Client) -> list[str]:
    ids: list[str] = []
    answer = client.get("/Basic", params={"_count": "1000"})
    while True:
        assert answer.status_code == 200
        bundle = answer.json()
        ids += [e["resource"]["id"] for e in bundle.get("entry", [])
                if e["search"]["mode"] == "match"]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            return ids
        answer = client.get(following[0])


def test_four_searches_of_a_thousand_large_resources_stay_within_512_mb(
        database_url: str) -> None:
    with scratch_database(database_url, "rss") as url:
        proc, base = start_server(url)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(_LOAD, {"n": RESOURCES, "parts": NOTE // 32})
            with httpx.Client(base_url=f"{base}/fhir", timeout=120) as client, \
                    ThreadPoolExecutor(4) as pool:
                sizes = list(pool.map(
                    lambda _: len(client.get("/Basic", params={"_count": "1000"}).content),
                    range(4)))
                # each page is cut at MAX_RESPONSE_BYTES (8 MiB), far below 200 MB
                assert all(6_000_000 < s <= 8 * 1024 * 1024 for s in sizes), sizes
                ids = _ids(client)
            peak = _peak_rss(proc.pid)
            assert peak < BOUND, f"worker peak RSS {peak / 2**20:.0f} MiB"
            assert len(ids) == RESOURCES
            assert sorted(ids) == sorted(f"big-{i}" for i in range(1, RESOURCES + 1))
        finally:
            proc.terminate()
            proc.wait(20)
