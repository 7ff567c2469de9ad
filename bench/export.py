"""Bulk Data export benchmark: ``$export`` of N resources, resources/s and peak RSS.

One run: a fresh database, our server (one worker, ``DATA_DIR`` in a temporary folder so
the files land on the local disk), ``--resources`` resources loaded with ``fhir-server
import`` (Patients, each with four Observations), then one system-level ``$export``
timed from the kick-off to the manifest (polled every 50 ms), and every file read back
and counted. The worker's peak RSS (VmHWM) before and after the export says whether
memory stayed flat. Target: >= 20,000 resources/s for 100,000.

    .venv/bin/python -m bench.export                        # 100,000 resources
    .venv/bin/python -m bench.export --resources 20000      # quicker

Results: a table on stdout, JSON in ``bench/results/<name>.json``. Exit status 1 with
``--check`` when the rate is below ``--target``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import common
from bench.binary import peak_rss_mib
from bench.common import BenchError, log

#: Observations per Patient in the generated population
OBSERVATIONS = 4


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.export",
                                description=__doc__.split("\n", 1)[0])
    p.add_argument("--resources", type=int, default=100_000,
                   help="resources to export (100000)")
    p.add_argument("--target", type=float, default=20_000.0,
                   help="wanted resources/s (20000)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the rate is below --target")
    p.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL",
                                                         common.DEFAULT_ADMIN_URL),
                   help="PostgreSQL URL used to create and drop the database "
                        "(BENCH_ADMIN_URL, default %(default)s)")
    p.add_argument("--db-name", default=f"bench_export_{os.getpid()}",
                   help="database to create (must start with bench_)")
    p.add_argument("--keep", action="store_true", help="keep the database and logs")
    p.add_argument("--name", default="export", help="results file bench/results/NAME.json")
    p.add_argument("--max-seconds", type=float, default=1200,
                   help="abort (and clean up) after this long (1200)")
    return p


def population(path: Path, resources: int) -> None:
    """NDJSON of Patients with their Observations, ``resources`` lines in all."""
    with path.open("wb") as f:
        written = patient = 0
        while written < resources:
            pid = f"bp{patient}"
            f.write(orjson.dumps({"resourceType": "Patient", "id": pid, "gender": "male",
                                  "name": [{"family": f"Bench{patient}"}],
                                  "birthDate": "1980-02-03"}) + b"\n")
            written += 1
            for o in range(min(OBSERVATIONS, resources - written)):
                f.write(orjson.dumps({
                    "resourceType": "Observation", "id": f"{pid}-o{o}", "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                    "subject": {"reference": f"Patient/{pid}"},
                    "effectiveDateTime": "2024-05-06T07:08:09Z",
                    "valueQuantity": {"value": 70 + o, "unit": "kg",
                                      "system": "http://unitsofmeasure.org", "code": "kg"},
                }) + b"\n")
                written += 1
            patient += 1


def start(stack: contextlib.ExitStack, db_url: str, tmp: Path) -> common.Server:
    """Our server, one worker, its files under ``tmp``."""
    port = common.free_port()
    env = common.server_env(db_url, 1, 4) | {
        "MIGRATE_ON_START": "true", "AUTH_MODE": "off", "AUDIT": "false",
        "DATA_DIR": str(tmp / "data")}
    server = common.start_server(
        "ours", [common.PYTHON, "-m", "bench.serve_ours", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", "1"], env, port, tmp)
    stack.callback(server.stop)
    common.wait_until(server, "/api/v1/ready", 200, 90)
    return server


def load(db_url: str, path: Path) -> None:
    """``fhir-server import`` of the population."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(DATABASE_URL=db_url, LOG_LEVEL="warning")
    done = subprocess.run([common.PYTHON, "-m", "fhir_server.cli", "import", "--no-progress",
                           str(path)], env=env, cwd=common.ROOT, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"import failed: {done.stderr[-2000:]}")


def export(client: httpx.Client) -> tuple[float, dict[str, Any]]:
    """Seconds from kick-off to manifest, and the manifest."""
    started = time.perf_counter()
    answer = client.get("/fhir/$export", headers={"Prefer": "respond-async",
                                                   "Accept": "application/fhir+json"})
    if answer.status_code != 202:
        raise BenchError(f"kick-off answered {answer.status_code}: {answer.text}")
    status_url = answer.headers["content-location"]
    while True:
        answer = client.get(status_url)
        if answer.status_code == 200:
            return time.perf_counter() - started, dict(answer.json())
        if answer.status_code != 202:
            raise BenchError(f"status answered {answer.status_code}: {answer.text}")
        time.sleep(0.05)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One benchmark run; the results (also written to bench/results)."""
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(common.work_dir(args.keep))
        db_url = stack.enter_context(common.bench_database(args.admin_url, args.db_name,
                                                           args.keep))
        with common.bounded_run(args.max_seconds):
            source = tmp / "population.ndjson"
            population(source, args.resources)
            server = start(stack, db_url, tmp)
            log(f"loading {args.resources} resources")
            load(db_url, source)
            with httpx.Client(base_url=server.url, timeout=300) as client:
                before = peak_rss_mib(server.proc.pid)
                seconds, manifest = export(client)
                after = peak_rss_mib(server.proc.pid)
                lines = 0
                for output in manifest["output"]:
                    with client.stream("GET", output["url"]) as answer:
                        got = sum(piece.count(b"\n") for piece in answer.iter_bytes(1 << 20))
                    if got != output["count"]:
                        raise BenchError(f"{output['url']}: {got} lines, not "
                                         f"{output['count']}")
                    lines += got
    if lines != args.resources:
        raise BenchError(f"exported {lines} resources of {args.resources}")
    rate = lines / seconds
    result = {"params": {k: v for k, v in vars(args).items() if k != "admin_url"},
              "resources": lines, "files": len(manifest["output"]),
              "seconds": round(seconds, 2), "resources_per_s": round(rate),
              "target_resources_per_s": args.target,
              "peak_rss_mib": {"before": round(before, 1), "after": round(after, 1)},
              "pass": rate >= args.target}
    print(f"{'export':<22}{result['resources_per_s']:>10} resources/s  "
          f"({lines} in {seconds:.2f} s, {len(manifest['output'])} files; target "
          f"{args.target:g}: {'pass' if result['pass'] else 'FAIL'})")
    print(f"{'worker peak RSS':<22}{before:>10.1f} MiB before, {after:.1f} MiB after")
    path = common.write_results(args.name, result)
    print(f"results: {path.relative_to(common.ROOT)}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    return common.run_main("bench.export", _parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
