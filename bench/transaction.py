"""Transactions benchmark: Synthea-style Bundles posted to ``POST /fhir`` by 8 clients.

The same data as ``bench.import_bench`` (hospital and practitioner Bundles with
``ifNoneExist`` first, then one transaction Bundle per patient whose references to them
are conditional). Reports resources/s and per-Bundle latency p50/p95.

    .venv/bin/python -m bench.transaction --patients 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    bounded_run,
    format_table,
    log,
    machine_info,
    serve_on_fresh_database,
    write_results,
)
from bench.synthea import generate, manifest_path, reshape

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HEADERS = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}


async def _post(client: httpx.AsyncClient, body: bytes) -> tuple[float, int, int]:
    """Post one Bundle: (seconds, HTTP status, entries)."""
    entries = body.count(b'"request"')
    started = time.perf_counter()
    response = await client.post("/fhir", content=body, headers=HEADERS)
    return time.perf_counter() - started, response.status_code, entries


async def run(base_url: str, files: list[Path], clients: int) -> dict[str, Any]:
    """Shared Bundles one by one, then patient Bundles on ``clients`` connections."""
    # Read up front: file reads would block the event loop mid-measurement.
    shared = [f.read_bytes() for f in files if "Information" in f.name]
    patients = [f.read_bytes() for f in files if "Information" not in f.name]
    timeout = httpx.Timeout(600.0)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
        for body in shared:
            _, status, _ = await _post(client, body)
            if status != 200:
                raise SystemExit(f"a shared Bundle failed: HTTP {status}")
        queue = list(patients)
        results: list[tuple[float, int, int]] = []
        started = time.perf_counter()

        async def worker() -> None:
            while queue:
                results.append(await _post(client, queue.pop()))

        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    failures = [r for r in results if r[1] != 200]
    resources = sum(r[2] for r in results if r[1] == 200)
    return {
        "bundles": len(results), "failures": len(failures), "resources": resources,
        "wall_seconds": round(wall, 2), "resources_per_second": round(resources / wall, 1),
        "bundle_p50_s": round(statistics.median(latencies), 3),
        "bundle_p95_s": round(latencies[max(0, int(len(latencies) * 0.95) - 1)], 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Generate (once), serve on a fresh database, post, report."""
    parser = argparse.ArgumentParser(prog="bench.transaction", description=__doc__)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    folder = reshape(generate(args.patients, args.seed), args.patients, args.seed)
    files = sorted(folder.glob("*.json"))
    with bounded_run(3600), contextlib.ExitStack() as stack:
        db_url, server = serve_on_fresh_database(
            stack, args.admin_url, f"bench_tx_{args.patients}", args.keep, args.workers)
        log(f"posting {len(files)} Bundles with {args.clients} clients")
        result = asyncio.run(run(server.url, files, args.clients))
        result["target_resources_per_second"] = 1000
        result["pass"] = result["failures"] == 0 and result["resources_per_second"] >= 1000
        data = {"name": "transaction", "params": vars(args),
                "data": manifest_path(folder).read_text(), "machine": machine_info(db_url),
                "result": result}
        path = write_results("transaction", data)
    print(format_table(list(result), [list(result.values())]))
    print(f"results: {path}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
