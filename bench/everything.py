"""``Patient/$everything`` of a Synthea adult: the whole record, every page, timed.

The same Synthea-style data as ``bench.transaction`` (``--patients`` patients posted as
transactions); the patient whose record is closest to ``--record`` resources (1,400, a
Synthea adult) is fetched ``--runs`` times with ``$everything?_count=1000`` following
every ``next`` link. The baseline, in the same run against the same server, is the
compartment search of every type (``Patient/{id}/*?_count=1000``, all pages), which
returns the same compartment without the referenced resources.

    .venv/bin/python -m bench.everything --patients 10
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import (
    bounded_run,
    format_table,
    log,
    machine_info,
    serve_on_fresh_database,
    write_results,
)
from bench.synthea import generate, reshape

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HEADERS = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}
TARGET_P95_MS = 300.0


def _load(client: httpx.Client, files: list[Path]) -> dict[Path, dict[str, Any]]:
    """Post every Bundle; the transaction-response of each."""
    out: dict[Path, dict[str, Any]] = {}
    for path in files:
        answer = client.post("/fhir", content=path.read_bytes(), headers=HEADERS)
        if answer.status_code != 200:
            raise SystemExit(f"{path.name}: {answer.status_code} {answer.text[:300]}")
        out[path] = orjson.loads(answer.content)
    return out


def _walk(client: httpx.Client, url: str) -> tuple[float, int]:
    """Seconds to fetch every page, and the entries fetched."""
    started = time.perf_counter()
    entries = 0
    while url:
        answer = client.get(url)
        answer.raise_for_status()
        bundle = orjson.loads(answer.content)
        entries += len(bundle.get("entry", []))
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), "")
    return time.perf_counter() - started, entries


def _pick(loaded: dict[Path, dict[str, Any]], record: int) -> tuple[str, int]:
    """The patient (server id, resources in its Bundle) closest to ``record`` resources."""
    best: tuple[int, str, int] | None = None
    for path, response in loaded.items():
        entries = orjson.loads(path.read_bytes()).get("entry", [])
        where = [i for i, e in enumerate(entries)
                 if e.get("resource", {}).get("resourceType") == "Patient"]
        if len(where) != 1:
            continue
        location = response["entry"][where[0]]["response"]["location"]
        if best is None or abs(len(entries) - record) < best[0]:
            best = (abs(len(entries) - record), location.split("/")[1], len(entries))
    if best is None:
        raise SystemExit("no patient Bundle found")
    return best[1], best[2]


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 1),
            "max_ms": round(ms[-1], 1)}


def main(argv: list[str] | None = None) -> int:
    """Generate (once), serve on a fresh database, load, time, report."""
    parser = argparse.ArgumentParser(prog="bench.everything", description=__doc__)
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--record", type=int, default=1400)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    folder = reshape(generate(args.patients, args.seed), args.patients, args.seed)
    # shared resources first: the patients' Bundles refer to them conditionally
    files = sorted(folder.glob("*.json"), key=lambda p: (p.name.startswith("patient"), p.name))
    with bounded_run(3600), contextlib.ExitStack() as stack:
        db_url, server = serve_on_fresh_database(
            stack, args.admin_url, f"bench_everything_{args.patients}", args.keep,
            args.workers)
        with httpx.Client(base_url=server.url, timeout=120) as client:
            log(f"loading {len(files)} Bundles")
            patient, size = _pick(_load(client, files), args.record)
            log(f"patient {patient}: {size} resources in its Bundle")
            urls = {"everything": f"/fhir/Patient/{patient}/$everything?_count=1000",
                    "compartment": f"/fhir/Patient/{patient}/*?_count=1000"}
            timings: dict[str, list[float]] = {k: [] for k in urls}
            entries: dict[str, int] = {}
            for name, url in urls.items():  # warm-up
                entries[name] = _walk(client, url)[1]
            for _ in range(args.runs):  # alternating, so drift hits both alike
                for name, url in urls.items():
                    timings[name].append(_walk(client, url)[0])
        result: dict[str, Any] = {"patient_resources": size}
        for name in urls:
            result |= {f"{name}_{k}": v for k, v in _percentiles(timings[name]).items()}
            result[f"{name}_entries"] = entries[name]
        result["ratio_p95"] = round(result["everything_p95_ms"]
                                    / result["compartment_p95_ms"], 2)
        result["target_p95_ms"] = TARGET_P95_MS
        result["pass"] = result["everything_p95_ms"] <= TARGET_P95_MS
        data = {"name": "everything", "params": vars(args), "machine": machine_info(db_url),
                "result": result}
        path = write_results("everything", data)
    print(format_table(list(result), [list(result.values())]))
    print(f"results: {path}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
