"""A million resources: load rate, database size and search latency at scale.

    .venv/bin/python -m bench.million --resources 100000
    .venv/bin/python -m bench.million --resources 1000000 --compare bench/results/million-100k.json

1. Generates (once, cached) a Synthea-shaped population of ``--resources`` resources
   (``bench/population.py``: about 54 a patient, NDJSON per type plus Synthea's shared
   Organization/Practitioner Bundles) in ``bench/.cache/million/``.
2. Creates and migrates ``imp_test_million_<pid>``, times ``fhir-server import`` of the
   folder (resources/s, importer and PostgreSQL CPU), then ``VACUUM ANALYZE``.
3. Measures what the database holds: ``pg_database_size``, ``pg_total_relation_size``
   of every table, the compact JSON bytes of the imported resources and the ratio, and
   bytes per resource.
4. Starts our server on it (2 workers) and runs the query mix of
   ``bench/million_queries.py`` (the search benchmark's mix on this data, plus
   ``Patient/{id}/$everything`` and ``Patient/{id}/Observation``) from one sequential
   keep-alive client: one warm-up pass, then ``--reps`` rounds of every query; p50/p95.
5. PASS: every query's p95 <= 50 ms; with ``--compare`` (an earlier results file, e.g.
   the 100k run), every selective query's p50 within 1.5 x its figure there.
6. Stops the server, drops the database, writes ``bench/results/million-<scale>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from bench import common, population, search
from bench.import_bench import scratch_database, timed_import
from bench.million_queries import mix

P95_TARGET_MS = 50.0
GROWTH_TARGET = 1.5


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.million",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--resources", type=int, default=100_000,
                   help="resources to generate and load, about (100000)")
    p.add_argument("--seed", type=int, default=1, help="population seed (1)")
    p.add_argument("--import-workers", type=int, help="importer processes (CPUs)")
    p.add_argument("--concurrency", type=int, default=4, help="importer lanes a worker (4)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (2)")
    p.add_argument("--reps", type=int, default=20, help="measured runs of each query (20)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up passes (1)")
    p.add_argument("--quiet-wait", type=float, default=30, metavar="SECONDS",
                   help="wait up to this long for other load to calm down first (30)")
    p.add_argument("--compare", type=Path,
                   help="an earlier results file: selective queries within 1.5 x its p50")
    p.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL",
                                                         common.DEFAULT_ADMIN_URL))
    p.add_argument("--db-name", default=f"imp_test_million_{os.getpid()}",
                   help="database to create (imp_test_million_<pid>)")
    p.add_argument("--keep", action="store_true", help="keep the database and server log")
    p.add_argument("--reuse", action="store_true",
                   help="only the queries, on the existing --db-name (a --keep run's):"
                        " no import, no migration (the server's code decides the SQL)")
    p.add_argument("--against", type=Path, metavar="CHECKOUT",
                   help="with --reuse: also serve from this checkout of the code (another"
                        " worktree) and measure both, each query on both back to back")
    p.add_argument("--name", help="results file name (million-<scale>)")
    p.add_argument("--max-seconds", type=float, default=5400,
                   help="stop (and clean up) after this long (5400)")
    return p


# --- sizes ------------------------------------------------------------------------------


def sizes(url: str, compact_bytes: int) -> dict[str, Any]:
    """What the database takes on disk, overall, per table and per resource."""
    with psycopg.connect(url) as conn:
        database = int(conn.execute("SELECT pg_database_size(current_database())")
                       .fetchone()[0])  # type: ignore[index]
        tables = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid),"
            " c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid ="
            " c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
            " ORDER BY 2 DESC").fetchall()
        resources = int(conn.execute("SELECT count(*) FROM resource")
                        .fetchone()[0])  # type: ignore[index]
        content = int(conn.execute("SELECT sum(pg_column_size(content)) FROM resource")
                      .fetchone()[0] or 0)  # type: ignore[index]
    return {
        "resources": resources, "database_bytes": database,
        "compact_json_bytes": compact_bytes,
        "database_to_json_ratio": round(database / compact_bytes, 2) if compact_bytes else None,
        "database_bytes_per_resource": round(database / max(resources, 1)),
        "json_bytes_per_resource": round(compact_bytes / max(resources, 1)),
        "stored_content_bytes": content,
        "tables": [{"table": name, "total_bytes": int(total), "heap_bytes": int(heap),
                    "rows_estimate": int(rows)} for name, total, heap, rows in tables
                   if int(total) > 0],
    }


# --- queries ----------------------------------------------------------------------------


def queries_stage(server: common.Server, pick: dict[str, Any], args: argparse.Namespace
                  ) -> dict[str, Any]:
    """Warm-up pass, then ``reps`` round-robin rounds of the mix; p50/p95 per query."""
    queries = mix(pick)
    idle = common.wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else -1.0
    load_before = round(os.getloadavg()[0], 2)
    client = search.Client(server.url)
    try:
        samples, shapes, busy, seconds = search.measure(client, queries, args.warmup,
                                                        args.reps)
    finally:
        client.close()
    out = []
    for q in queries:
        s = shapes[q.name]
        out.append({"name": q.name, "feature": q.feature, "path": q.path,
                    "selective": q.selective, "note": q.note, "matches": s.matches,
                    "includes": s.includes, "total": s.total,
                    "latency_ms": search.summary(samples[q.name]),
                    "samples_ms": [round(v, 3) for v in samples[q.name]]})
    return {"reps": args.reps, "warmup": args.warmup, "seconds": seconds,
            "machine_busy_cores": busy, "idle_before_cores": idle,
            "load_before": load_before, "queries": out}


def evaluate(queries: list[dict[str, Any]], previous: dict[str, Any] | None
             ) -> list[dict[str, Any]]:
    """The targets of every query (p95, and growth against ``previous``)."""
    before = {q["name"]: q for q in previous["search"]["queries"]} if previous else {}
    rows = []
    for q in queries:
        lat = q["latency_ms"]
        row: dict[str, Any] = {"name": q["name"], "selective": q["selective"],
                               "p50": lat["p50"], "p95": lat["p95"],
                               "rows": q["matches"], "includes": q["includes"],
                               "targets": {}}
        if q["feature"] != "read":
            row["targets"]["p95<=50ms"] = lat["p95"] <= P95_TARGET_MS
        old = before.get(q["name"])
        if old:
            row["before"] = {"p50": old["latency_ms"]["p50"],
                             "p95": old["latency_ms"]["p95"], "rows": old["matches"]}
            row["growth_p50"] = round(lat["p50"] / old["latency_ms"]["p50"], 2)
            row["growth_p95"] = round(lat["p95"] / old["latency_ms"]["p95"], 2)
            if q["selective"] and q["feature"] != "read":
                row["targets"]["growth<=1.5x"] = row["growth_p50"] <= GROWTH_TARGET
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The query results as text."""
    compare = any("before" in r for r in rows)
    head = ["query", "sel", "rows", "p50 ms", "p95 ms"]
    if compare:
        head += ["before p50/p95", "growth p50"]
    lines = []
    for r in rows:
        marks = " ".join(f"{k}:{'ok' if v else 'MISS'}" for k, v in r["targets"].items())
        rows_text = f"{r['rows']}+{r['includes']}" if r["includes"] else str(r["rows"])
        line: list[object] = [r["name"], "y" if r["selective"] else "n", rows_text,
                              r["p50"], r["p95"]]
        if compare:
            b = r.get("before")
            line += [f"{b['p50']:.2f}/{b['p95']:.2f}" if b else "-",
                     r.get("growth_p50", "-")]
        lines.append([*line, marks])
    return common.format_table([*head, "targets"], lines)


# --- main -------------------------------------------------------------------------------


def reuse(args: argparse.Namespace, pick: dict[str, Any], label: str,
          previous: dict[str, Any] | None) -> int:
    """The query stage alone on a kept database: to compare query plans (code, indexes)
    on the same data without loading it again. MIGRATE_ON_START is off, so a checkout
    of other code measures against the schema as it is."""
    url = psycopg.conninfo.make_conninfo(args.admin_url, dbname=args.db_name)
    with contextlib.ExitStack() as stack:
        stack.enter_context(common.bounded_run(args.max_seconds))
        log_dir = stack.enter_context(common.work_dir(args.keep))
        server = common.start_ours(stack, url, args.workers, 2, 10, log_dir,
                                   extra_env={"MIGRATE_ON_START": "false"})
        if args.against is not None:
            other = common.start_ours(
                stack, url, args.workers, 2, 10, log_dir, name="against",
                extra_env={"MIGRATE_ON_START": "false"}, checkout=args.against.resolve())
            return side_by_side(server, other, pick, args, label)
        measured = queries_stage(server, pick, args)
        common.ensure_alive(server)
    rows = evaluate(measured["queries"], previous)
    text = table(rows)
    missed = [f"{r['name']} {k}" for r in rows for k, v in r["targets"].items() if not v]
    print(text)
    print(f"targets missed: {len(missed)}" + (f" ({', '.join(missed)})" if missed else ""))
    path = common.write_results(label, {
        "command": " ".join(["python", "-m", "bench.million", *sys.argv[1:]]),
        "machine": common.machine_info(args.admin_url), "population": {"pick": pick},
        "search": measured, "compared_with": str(args.compare) if args.compare else None,
        "targets": {"p95_ms": P95_TARGET_MS, "growth_p50": GROWTH_TARGET},
        "rows": rows, "missed": missed, "table": text.splitlines()})
    common.log(f"results written to {path}")
    return 0


def side_by_side(ours: common.Server, other: common.Server, pick: dict[str, Any],
                 args: argparse.Namespace, label: str) -> int:
    """Both servers on the same database, each query on one then the other in every
    round (the machine's load hits both alike); p50/p95 and the ratio ours / other."""
    queries = mix(pick)
    if args.quiet_wait > 0:
        common.wait_for_quiet(args.quiet_wait)
    clients = {"ours": search.Client(ours.url), "against": search.Client(other.url)}
    samples: dict[str, dict[str, list[float]]] = {n: {q.name: [] for q in queries}
                                                  for n in clients}
    try:
        for client in clients.values():
            search.measure(client, queries, args.warmup, 0)  # answers checked, warm
        for _ in range(args.reps):
            for q in queries:
                for name, client in clients.items():
                    samples[name][q.name].append(client.get(q.path).ms)
    finally:
        for client in clients.values():
            client.close()
    rows = []
    for q in queries:
        a, b = (search.summary(samples[n][q.name]) for n in ("against", "ours"))
        rows.append({"name": q.name, "selective": q.selective, "against": a, "ours": b,
                     "ratio_p50": round(b["p50"] / a["p50"], 2),
                     "ratio_p95": round(b["p95"] / a["p95"], 2)})
    text = common.format_table(
        ["query", "sel", "against p50/p95", "ours p50/p95", "ours/against p50", "p95"],
        [[r["name"], "y" if r["selective"] else "n",
          f"{r['against']['p50']:.2f} / {r['against']['p95']:.2f}",
          f"{r['ours']['p50']:.2f} / {r['ours']['p95']:.2f}", r["ratio_p50"],
          r["ratio_p95"]] for r in rows])
    print(text)
    path = common.write_results(label, {
        "command": " ".join(["python", "-m", "bench.million", *sys.argv[1:]]),
        "against": str(args.against), "machine": common.machine_info(args.admin_url),
        "population": {"pick": pick}, "rows": rows, "table": text.splitlines(),
        "samples_ms": samples})
    common.log(f"results written to {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    """The whole benchmark (see the module docstring)."""
    previous = json.loads(args.compare.read_text()) if args.compare else None
    patients = max(1, round(args.resources / population.RESOURCES_PER_PATIENT))
    common.log(f"population: {patients:,} patients (seed {args.seed})")
    started = time.perf_counter()
    folder = population.generate(patients, args.seed)
    manifest = json.loads(population.manifest_path(folder).read_text())
    common.log(f"population: {manifest['resources']:,} resources, "
               f"{manifest['bytes'] / 1e6:,.0f} MB in {folder} "
               f"({time.perf_counter() - started:.0f} s)")
    pick = manifest["pick"]
    if pick is None:
        raise common.BenchError(f"no query patient: --resources must give more than "
                                f"{population.PICK_FROM} patients")
    scale = f"{args.resources // 1_000_000}M" if args.resources % 1_000_000 == 0 \
        else search.scale_label(args.resources)
    label = args.name or f"million-{scale}"
    if args.reuse:
        return reuse(args, pick, label, previous)
    machine = common.machine_info(args.admin_url)
    with contextlib.ExitStack() as stack:
        stack.enter_context(common.bounded_run(args.max_seconds))
        url = stack.enter_context(scratch_database(args.admin_url, args.db_name, args.keep))
        imported = timed_import(url, folder, args.import_workers, args.concurrency,
                                "import")
        imported["load_before"] = machine["loadavg_at_start"][0]
        if imported["exit_status"] != 0 or imported["problems"]:
            raise common.BenchError(f"import failed: {imported['first_problems']}")
        common.log(f"import: {imported['resources']:,} resources in "
                   f"{imported['wall_seconds']} s = {imported['resources_per_second']}/s; "
                   "VACUUM ANALYZE")
        vacuum_started = time.perf_counter()
        common.execute(url, "VACUUM ANALYZE")
        vacuum_seconds = round(time.perf_counter() - vacuum_started, 1)
        held = sizes(url, manifest["bytes"])
        common.log(f"database: {held['database_bytes'] / 1e6:,.0f} MB for "
                   f"{held['resources']:,} resources "
                   f"({held['database_to_json_ratio']} x the compact JSON)")
        log_dir = stack.enter_context(common.work_dir(args.keep))
        # AUTH_MODE=off, no audit trail, 2-10 connections a worker: as bench.read
        server = common.start_ours(stack, url, args.workers, 2, 10, log_dir)
        common.log(f"search: {len(mix(pick))} queries x {args.reps} on Patient/{pick['id']}")
        measured = queries_stage(server, pick, args)
        common.ensure_alive(server)
    rows = evaluate(measured["queries"], previous)
    text = table(rows)
    missed = [f"{r['name']} {k}" for r in rows for k, v in r["targets"].items() if not v]
    print(text)
    print(f"\nimport: {imported['resources']:,} resources at "
          f"{imported['resources_per_second']:,}/s (CPU-bound "
          f"{imported['cpu_bound_resources_per_second']}/s; machine busy "
          f"{imported['machine_busy_cores']} cores)")
    print(f"database: {held['database_bytes']:,} bytes, "
          f"{held['database_bytes_per_resource']:,} a resource; compact JSON "
          f"{held['compact_json_bytes']:,} bytes; ratio {held['database_to_json_ratio']}")
    print(f"targets missed: {len(missed)}" + (f" ({', '.join(missed)})" if missed else ""))
    path = common.write_results(label, {
        "command": " ".join(["python", "-m", "bench.million", *sys.argv[1:]]),
        "machine": machine, "population": manifest, "import": imported,
        "vacuum_analyze_seconds": vacuum_seconds, "size": held, "search": measured,
        "compared_with": str(args.compare) if args.compare else None,
        "targets": {"p95_ms": P95_TARGET_MS, "growth_p50": GROWTH_TARGET},
        "rows": rows, "missed": missed, "table": text.splitlines()})
    common.log(f"results written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse the arguments and run; exit 2 when the run could not be done."""
    args = _parser().parse_args(argv)
    if not args.db_name.startswith("imp_test_"):
        print("--db-name must start with imp_test_", file=sys.stderr)
        return 2
    try:
        return run(args)
    except common.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
