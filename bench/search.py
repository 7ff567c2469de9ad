"""Search latency at two scales: ``python -m bench.search``.

1. Builds (or reuses) the deterministic data set of ``bench/data.py``: the US Core
   example bundles plus carebundle patients, about 100,000 resources.
2. Creates a database ``bench_search_<pid>``, starts our server on it (2 workers,
   migrations applied at start) and PUTs the first ~10,000 resources through the API
   (16 keep-alive connections), then ``VACUUM ANALYZE``.
3. Runs the fixed query mix of ``bench/search_queries.py`` (token, string prefix, date
   range, chains of one and two levels, ``_has``, ``_include``, ``_revinclude``,
   ``_sort`` with a filter, ``_summary=count``, ``_total=accurate``, first and last page
   of a large result) from one sequential client on one keep-alive connection: a few
   warm-up rounds, then ``--reps`` rounds, each round running every query once (so that
   drift on the machine hits every query alike). The last page is found by walking the
   ``next`` links of the paging query.
4. For every query, explains the SQL it compiles to (``bench/search_explain.py``): the
   median planning + execution time of the custom plan, and the plan a server
   connection settles on once the statement is prepared (custom or generic).
5. Loads the rest (to ~100,000 resources), ``VACUUM ANALYZE``, and does 3-4 again.
6. Prints the table, checks the targets and writes ``bench/results/search-10k.json``,
   ``search-100k.json`` and ``search-summary.json``.

Targets (from the issue): every query p95 <= 50 ms at 100k; for selective queries
p50(100k) / p50(10k) <= 1.5; the last page no slower than 1.5x the first (p50); a
selective filter sorted by ``-_lastUpdated`` no slower than 2x unsorted (p50 and p95, at
both scales).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench import common, data
from bench.search_queries import Picks, Query, floor_query, mix, pick

P95_TARGET_MS = 50.0
GROWTH_TARGET = 1.5
LAST_PAGE_TARGET = 1.5
SORT_TARGET = 2.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.search",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--small", type=int, default=10_000,
                   help="resources of the first stage (10000)")
    p.add_argument("--large", type=int, default=100_000,
                   help="resources of the second stage, 0 to skip it (100000)")
    p.add_argument("--seed", type=int, default=20240601, help="data seed (20240601)")
    p.add_argument("--reps", type=int, default=30, help="measured runs of each query (30)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up runs of each query (3)")
    p.add_argument("--explain-runs", type=int, default=5,
                   help="EXPLAIN ANALYZE runs per statement; the median is kept (5)")
    p.add_argument("--concurrency", type=int, default=16, help="loader connections (16)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (2)")
    p.add_argument("--max-pages", type=int, default=3000,
                   help="most pages walked to find the last page (3000)")
    p.add_argument("--quiet-wait", type=float, default=60, metavar="SECONDS",
                   help="wait up to this long for other load to stop before measuring (60)")
    p.add_argument("--source", type=Path, default=common.ROOT,
                   help="source tree to run the server and the compiler from, e.g. a "
                        "`git archive` export of a commit (default: this working tree)")
    p.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL",
                                                         common.DEFAULT_ADMIN_URL),
                   help="PostgreSQL URL allowed to create databases")
    p.add_argument("--db-name", default=f"bench_search_{os.getpid()}",
                   help="database to create (bench_search_<pid>)")
    p.add_argument("--keep", action="store_true",
                   help="keep the database, the server log and the work folder")
    p.add_argument("--prefix", default="search",
                   help="results files bench/results/PREFIX-*.json (search)")
    p.add_argument("--max-seconds", type=float, default=3000,
                   help="stop (and clean up) after this long (3000)")
    return p


# --- the server -------------------------------------------------------------------------


def start_server(stack: contextlib.ExitStack, db_url: str, source: Path, workers: int,
                 log_dir: Path, timeout: float = 120.0) -> common.Server:
    """Start ``fhir-server serve`` from ``source`` (migrating the database), wait until
    it is ready; stopped when ``stack`` closes."""
    port = common.free_port()
    module = "bench.serve_ours" if (source / "bench" / "serve_ours.py").exists() \
        else "fhir_server.cli"
    env = {**os.environ, "DATABASE_URL": db_url, "MIGRATE_ON_START": "true",
           "LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1", "DB_POOL_MIN": "2",
           "DB_POOL_MAX": "10"}
    env.pop("PYTHONPATH", None)  # the source tree must win: it is the working directory
    log_path = log_dir / "server.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [common.PYTHON, "-m", module, "serve", "--host", "127.0.0.1", "--port",
             str(port), "--workers", str(workers)],
            cwd=source, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    db_name = str(psycopg.conninfo.conninfo_to_dict(db_url).get("dbname", ""))
    server = common.Server("ours", proc, f"http://127.0.0.1:{port}", log_path, db_name)

    def stop() -> None:
        common.log(f"server: stopping pid {proc.pid}")
        server.stop()

    stack.callback(stop)
    common.log(f"server: pid {proc.pid} on {server.url} from {source}, waiting until ready")
    common.wait_until(server, "/api/v1/ready", 200, timeout)
    return server


# --- the client -------------------------------------------------------------------------


@dataclass
class Answer:
    """One response: status, time, what the Bundle held."""

    status: int
    ms: float
    body: bytes


class Client:
    """One keep-alive HTTP/1.1 connection, sequential GETs, timed from send to last byte."""

    def __init__(self, base_url: str) -> None:
        url = urllib.parse.urlsplit(base_url)
        self._conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port,
                                                timeout=60)

    def get(self, path: str) -> Answer:
        """GET ``path``; the body is read completely before the clock stops.

        The server closes idle keep-alive connections after a few seconds (e.g. while
        the benchmark waits for a quiet machine): such a request is sent again on a new
        connection, timed from the new send.
        """
        for attempt in range(2):
            start = time.perf_counter()
            try:
                self._conn.request("GET", path, headers={"Accept": "application/fhir+json"})
                resp = self._conn.getresponse()
                body = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError):
                self._conn.close()
                if attempt:
                    raise
                continue
            ms = (time.perf_counter() - start) * 1000
            return Answer(resp.status, ms, body)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def relative(url: str) -> str:
    """The path and query of an absolute URL (``next`` links are absolute)."""
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class Shape:
    """What a searchset Bundle held."""

    matches: int
    includes: int
    total: int | None
    next_url: str | None
    outcome: list[str] = field(default_factory=list)


def shape(body: bytes) -> Shape:
    """Matches, includes, total, ``next`` link and warnings of a Bundle (or a resource)."""
    doc = json.loads(body)
    if doc.get("resourceType") != "Bundle":
        return Shape(1, 0, None, None)
    modes = [e.get("search", {}).get("mode") for e in doc.get("entry", [])]
    nxt = next((link["url"] for link in doc.get("link", []) if link["relation"] == "next"),
               None)
    outcome = [i.get("diagnostics", "") for e in doc.get("entry", [])
               if e.get("search", {}).get("mode") == "outcome"
               for i in e["resource"].get("issue", [])]
    return Shape(modes.count("match"), modes.count("include"), doc.get("total"), nxt, outcome)


# --- measuring --------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 30 samples is the second largest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """p50, p95, min, max and mean of latencies (ms)."""
    return {"p50": round(statistics.median(samples), 3),
            "p95": round(percentile(samples, 95), 3),
            "min": round(min(samples), 3), "max": round(max(samples), 3),
            "mean": round(statistics.fmean(samples), 3), "n": len(samples)}


@dataclass
class PagingWalk:
    """Walking the ``next`` links of the paging query to its end."""

    pages: int
    matches: int
    seconds: float
    first_ms: float
    last_ms: float
    last_path: str
    complete: bool


def walk(client: Client, path: str, max_pages: int) -> PagingWalk:
    """Follow ``next`` from ``path`` to the last page (or ``max_pages``)."""
    started = time.perf_counter()
    pages, matches = 0, 0
    current: str | None = path
    last_path, first_ms, last_ms = path, 0.0, 0.0
    while current is not None and pages < max_pages:
        answer = client.get(current)
        if answer.status != 200:
            raise common.BenchError(f"paging: HTTP {answer.status} on page {pages + 1}: "
                                    f"{answer.body[:300]!r}")
        result = shape(answer.body)
        pages += 1
        matches += result.matches
        if pages == 1:
            first_ms = answer.ms
        last_ms, last_path = answer.ms, current
        current = relative(result.next_url) if result.next_url else None
    return PagingWalk(pages, matches, round(time.perf_counter() - started, 2),
                      round(first_ms, 3), round(last_ms, 3), last_path, current is None)


def measure(client: Client, queries: Sequence[Query], warmup: int, reps: int
            ) -> tuple[dict[str, list[float]], dict[str, Shape], float, float]:
    """Round-robin runs of every query; latencies by name, the first answer's shape, and
    the machine's busy cores and seconds during the measured rounds."""
    shapes: dict[str, Shape] = {}
    for q in queries:
        answer = client.get(q.path)
        if answer.status != 200:
            raise common.BenchError(f"{q.name}: HTTP {answer.status} for {q.path}: "
                                    f"{answer.body[:500]!r}")
        shapes[q.name] = shape(answer.body)
        s = shapes[q.name]
        if s.matches == 0 and not s.total:
            raise common.BenchError(f"{q.name}: no match for {q.path}: the query mix must "
                                    "return something")
        if s.outcome:
            common.log(f"{q.name}: the server warned: {s.outcome}")
    for _ in range(max(0, warmup - 1)):
        for q in queries:
            client.get(q.path)
    samples: dict[str, list[float]] = {q.name: [] for q in queries}
    busy_before = common.machine_busy_seconds()
    started = time.perf_counter()
    for _ in range(reps):
        for q in queries:
            answer = client.get(q.path)
            if answer.status != 200:
                raise common.BenchError(f"{q.name}: HTTP {answer.status}")
            samples[q.name].append(answer.ms)
    seconds = time.perf_counter() - started
    busy = (common.machine_busy_seconds() - busy_before) / seconds if seconds else 0.0
    return samples, shapes, round(busy, 2), round(seconds, 2)


# --- one stage --------------------------------------------------------------------------


def _explain_all(db_url: str, queries: Sequence[Query], runs: int
                 ) -> dict[str, list[dict[str, Any]]]:
    from bench.search_explain import Explainer

    explainer = Explainer(db_url)

    async def run() -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for q in queries:
            if q.feature == "read":
                continue
            explained = await explainer.explain(q.path, runs)
            out[q.name] = [e.as_json() for e in explained]
        return out

    return asyncio.run(run())


def stage(label: str, server: common.Server, db_url: str, queries_base: list[Query],
          floor: Query, args: argparse.Namespace, load: data.LoadStats,
          counts: dict[str, int]) -> dict[str, Any]:
    """Measure the mix on the data loaded so far; the stage's JSON."""
    resources = int(common.scalar(db_url, "SELECT count(*) FROM resource WHERE NOT deleted"))
    client = Client(server.url)
    try:
        page_first = next(q for q in queries_base if q.name == "page-first")
        common.log(f"{label}: walking the next links of {page_first.path}")
        paging = walk(client, page_first.path, args.max_pages)
        common.log(f"{label}: {paging.pages} pages, {paging.matches:,} matches in "
                   f"{paging.seconds} s (first page {paging.first_ms} ms, last "
                   f"{paging.last_ms} ms)")
        queries = [*queries_base,
                   Query("page-last", "paging", paging.last_path, False,
                         f"last page ({paging.pages}) of the same, by its next-link cursor"),
                   floor]
        idle = common.wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else -1.0
        common.log(f"{label}: measuring {len(queries)} queries x {args.reps} "
                   f"(machine idle load {idle} cores)")
        samples, shapes, busy, seconds = measure(client, queries, args.warmup, args.reps)
    finally:
        client.close()
    common.log(f"{label}: measured in {seconds} s ({busy} cores busy); explaining")
    explained = _explain_all(db_url, [q for q in queries if q.feature != "read"],
                             args.explain_runs)
    out_queries = []
    for q in queries:
        stats = summary(samples[q.name])
        statements = explained.get(q.name, [])
        sql_ms = sum(s["custom_ms_median"] for s in statements)
        steady_ms = sum(s["steady_ms"] if s["steady_ms"] is not None
                        else s["custom_ms_median"] for s in statements)
        s = shapes[q.name]
        out_queries.append({
            "name": q.name, "feature": q.feature, "path": q.path, "selective": q.selective,
            "note": q.note, "matches": s.matches, "includes": s.includes, "total": s.total,
            "latency_ms": stats, "samples_ms": [round(v, 3) for v in samples[q.name]],
            "sql_ms": round(sql_ms, 3), "sql_steady_ms": round(steady_ms, 3),
            "generic_plan": any(st["steady_generic"] for st in statements),
            "ratio": round(stats["p50"] / sql_ms, 2) if sql_ms else None,
            "statements": statements,
        })
    return {
        "scale": label, "resources": resources, "by_type": counts,
        "load": {"sent": load.sent, "stored": load.stored, "seconds": round(load.seconds, 2),
                 "rate_per_s": round(load.rate, 1), "statuses": load.statuses,
                 "refused": load.refused, "first_refusal": load.first_refusal,
                 "retries": load.retries},
        "paging": paging.__dict__,
        "measure": {"reps": args.reps, "warmup": args.warmup, "seconds": seconds,
                    "machine_busy_cores": busy, "idle_before_cores": idle},
        "queries": out_queries,
    }


def scale_label(n: int) -> str:
    """``10k``, ``100k`` ... for a resource count (rounded to the thousand)."""
    return f"{round(n / 1000)}k" if n >= 1000 else str(n)


# --- comparing the stages and printing --------------------------------------------------


def evaluate(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per query across the stages, with the targets met or missed."""
    last = stages[-1]
    by_name = [{q["name"]: q for q in s["queries"]} for s in stages]
    rows = []
    for q in last["queries"]:
        name = q["name"]
        small = by_name[0][name]
        large = by_name[-1][name]
        row: dict[str, Any] = {
            "name": name, "feature": q["feature"], "selective": q["selective"],
            "path": q["path"],
            "small": {"p50": small["latency_ms"]["p50"], "p95": small["latency_ms"]["p95"],
                      "matches": small["matches"], "includes": small["includes"],
                      "sql_ms": small["sql_ms"], "ratio": small["ratio"]},
            "large": {"p50": large["latency_ms"]["p50"], "p95": large["latency_ms"]["p95"],
                      "matches": large["matches"], "includes": large["includes"],
                      "sql_ms": large["sql_ms"], "sql_steady_ms": large["sql_steady_ms"],
                      "generic_plan": large["generic_plan"], "ratio": large["ratio"]},
            "growth_p50": round(large["latency_ms"]["p50"] / small["latency_ms"]["p50"], 2),
            "growth_p95": round(large["latency_ms"]["p95"] / small["latency_ms"]["p95"], 2),
            "targets": {},
        }
        if q["feature"] != "read":
            row["targets"]["p95<=50ms"] = large["latency_ms"]["p95"] <= P95_TARGET_MS
            if q["selective"] and len(stages) > 1:
                row["targets"]["growth<=1.5x"] = row["growth_p50"] <= GROWTH_TARGET
        if name == "page-last":
            ratios = [by_name[i]["page-last"]["latency_ms"]["p50"]
                      / by_name[i]["page-first"]["latency_ms"]["p50"]
                      for i in range(len(stages))]
            row["last_vs_first"] = [round(r, 2) for r in ratios]
            row["targets"]["last<=1.5x first"] = all(r <= LAST_PAGE_TARGET for r in ratios)
        if name == "sort-lastUpdated":
            ratios = []
            for i in range(len(stages)):
                for pct in ("p50", "p95"):
                    ratios.append(by_name[i][name]["latency_ms"][pct]
                                  / by_name[i]["filter-unsorted"]["latency_ms"][pct])
            row["sorted_vs_unsorted"] = [round(r, 2) for r in ratios]
            row["targets"]["sorted<=2x unsorted"] = all(r <= SORT_TARGET for r in ratios)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]], labels: list[str]) -> str:
    """The results as a fixed-width text table."""
    small, large = labels[0], labels[-1]
    head = (f"{'query':<20} {'sel':<3} {'rows ' + small:>10} {'p50/p95 ' + small:>17} "
            f"{'rows ' + large:>11} {'p50/p95 ' + large:>18} {'growth':>6} "
            f"{'SQL ms':>7} {'steady':>7} {'ratio':>6}  targets")
    lines = [head, "-" * len(head)]
    for r in rows:
        s, lg = r["small"], r["large"]
        marks = " ".join(f"{k}:{'ok' if v else 'MISS'}" for k, v in r["targets"].items())
        extra = ""
        if "last_vs_first" in r:
            extra = f" (last/first {'/'.join(str(v) for v in r['last_vs_first'])})"
        if "sorted_vs_unsorted" in r:
            extra = f" (vs unsorted {'/'.join(str(v) for v in r['sorted_vs_unsorted'])})"
        steady = f"{lg['sql_steady_ms']:.2f}" + ("g" if lg["generic_plan"] else "")
        lines.append(
            f"{r['name']:<20} {'y' if r['selective'] else 'n':<3} "
            f"{_rows(s):>10} {s['p50']:>8.2f}/{s['p95']:<8.2f} "
            f"{_rows(lg):>11} {lg['p50']:>8.2f}/{lg['p95']:<9.2f} {r['growth_p50']:>6.2f} "
            f"{lg['sql_ms']:>7.2f} {steady:>7} "
            f"{'' if lg['ratio'] is None else lg['ratio']:>6}  {marks}{extra}")
    return "\n".join(lines)


def _rows(side: dict[str, Any]) -> str:
    return f"{side['matches']}+{side['includes']}" if side["includes"] else str(side["matches"])


def _git(source: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=source, capture_output=True, text=True,
                              timeout=20, check=False)
    except OSError:
        return ""
    return proc.stdout.strip()


# --- main -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """The whole benchmark (see the module docstring)."""
    source = args.source.resolve()
    if source != common.ROOT:
        sys.path.insert(0, str(source))  # the Explainer must compile like the server
    target = max(args.small, args.large)
    manifest = data.build(args.seed, target)
    # Held in memory (~120 MB) so that the run does not depend on the cache folder
    # staying in place for its whole duration.
    lines = list(data.read(args.seed, target, 0, manifest.total))
    cuts = [manifest.prefix(args.small)]
    if args.large > args.small:
        cuts.append(manifest.prefix(args.large))
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    stages: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(common.bounded_run(args.max_seconds))
        db_url = stack.enter_context(
            common.bench_database(args.admin_url, args.db_name, args.keep))
        log_dir = stack.enter_context(common.work_dir(args.keep))
        server = start_server(stack, db_url, source, args.workers, log_dir)
        picks: Picks = pick(manifest, cuts[0], args.seed, target)
        common.log(f"queries use carebundle patient #{picks.index} ({picks.profile}, "
                   f"Patient/{picks.patient_id}, visit {picks.visit})")
        queries = mix(picks)
        floor = floor_query(picks)
        start = 0
        for stop in cuts:
            label = scale_label(stop)
            common.log(f"{label}: loading resources {start:,}-{stop:,} by PUT on "
                       f"{args.concurrency} connections")
            stats = data.load(server.url, lines[start:stop], args.concurrency)
            common.ensure_alive(server)
            common.log(f"{label}: {stats.sent:,} PUTs in {stats.seconds:.1f} s = "
                       f"{stats.rate:.0f}/s; statuses {stats.statuses}"
                       + (f"; refused {stats.refused}" if stats.refused else ""))
            common.log(f"{label}: VACUUM ANALYZE")
            common.execute(db_url, "VACUUM ANALYZE")
            counts = data.count_types(lines[:stop])
            result = stage(label, server, db_url, queries, floor, args, stats, counts)
            result["picks"] = {k: str(v) for k, v in picks.__dict__.items()}
            path = common.RESULTS / f"{args.prefix}-{label}.json"
            path.write_text(json.dumps(result, indent=1) + "\n")
            common.log(f"{label}: results written to {path}")
            stages.append(result)
            start = stop
    labels = [s["scale"] for s in stages]
    rows = evaluate(stages)
    text = table(rows, labels)
    print(text)
    missed = [f"{r['name']} {k}" for r in rows for k, v in r["targets"].items() if not v]
    print(f"\ntargets missed: {len(missed)}" + (f" ({', '.join(missed)})" if missed else ""))
    for s in stages:
        print(f"load {s['scale']}: {s['load']['sent']:,} PUTs at {s['load']['rate_per_s']}/s;"
              f" paging walk {s['paging']['pages']} pages in {s['paging']['seconds']} s")
    summary_doc = {
        "command": " ".join([Path(sys.executable).name, "-m", "bench.search",
                             *sys.argv[1:]]),
        "source": str(source), "commit": _git(source, "rev-parse", "HEAD"),
        "dirty": bool(_git(source, "status", "--porcelain", "--untracked-files=no")),
        "postgres": common.postgres_version(args.admin_url),
        "data": {"seed": args.seed, "total": manifest.total, "sha256": manifest.sha256,
                 "carebundle": manifest.carebundle_version},
        "scales": labels,
        "load_rate_per_s": {s["scale"]: s["load"]["rate_per_s"] for s in stages},
        "targets": {"p95_ms": P95_TARGET_MS, "growth_p50": GROWTH_TARGET,
                    "last_vs_first_p50": LAST_PAGE_TARGET, "sorted_vs_unsorted": SORT_TARGET},
        "rows": rows, "missed": missed, "table": text.splitlines(),
    }
    path = common.RESULTS / f"{args.prefix}-summary.json"
    path.write_text(json.dumps(summary_doc, indent=1) + "\n")
    common.log(f"summary written to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse the arguments and run, turning BenchError into exit code 2."""
    args = _parser().parse_args(argv)
    if not args.db_name.startswith("bench_search_"):
        print("--db-name must start with bench_search_", file=sys.stderr)
        return 2
    try:
        return run(args)
    except (common.BenchError, data.LoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
