"""Create benchmark: ``POST /fhir/Patient`` of the official Patient example.

One run: a fresh database, our server (``fhir-server serve``, N workers) migrating it,
a wrk warm-up, then one measured wrk run of ``--duration`` seconds with
``--connections`` connections posting the example (``bench/lua/create.lua`` counts
every status). Afterwards the rows ``resource`` gained during the measured run are
compared with the 201s wrk saw: wrk does not count the requests still in flight when
it stops, which the server completes, so the rows may exceed the 201s by at most the
number of connections, and never fall short. Everything started is stopped and the
database dropped (unless ``--keep``).

    .venv/bin/python -m bench.create          # ~1 minute

Results: a table on stdout, JSON in ``bench/results/<name>.json``. Exit status 1 with
``--check`` when creates/s is below ``--target`` (or the row check fails).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import common
from bench.common import WrkRun, log

SCRIPT = common.LUA / "create.lua"
#: Cores used by other processes above which the run's numbers are flagged as disturbed.
#: (PostgreSQL's WAL writer and checkpointer count as "other" and are busy on creates.)
DISTURBED_CORES = 0.4
_COUNT_ROWS = "SELECT count(*) FROM resource WHERE resource_type = 'Patient'"
_COUNT_HISTORY = "SELECT count(*) FROM resource_history WHERE resource_type = 'Patient'"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.create",
                                description=__doc__.split("\n", 1)[0])
    common.add_load_args(p, duration_help="measured seconds (20)")
    p.add_argument("--body", type=Path, default=common.PATIENT_EXAMPLE,
                   help="resource to post (the official Patient example)")
    p.add_argument("--target", type=float, default=500, help="wanted creates/s (500)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when below --target or when the row check fails")
    common.add_run_args(p, "create", max_seconds=600, keep_help="keep the database and logs")
    return p


def settled_count(db_url: str, query: str, quiet: float = 0.5, timeout: float = 30) -> int:
    """A row count once it has stopped changing (in-flight writes have finished)."""
    deadline = time.monotonic() + timeout
    last = int(common.scalar(db_url, query))
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = int(common.scalar(db_url, query))
        if now == last:
            return now
        last = now
    return last


def check_rows(run: WrkRun, rows: int, history: int, connections: int) -> dict[str, Any]:
    """Compare the rows gained with the 201s seen (see the module docstring)."""
    created = run.statuses.get("201", 0)
    in_flight = rows - created
    return {
        "created_201": created,
        "rows_gained": rows,
        "history_rows_gained": history,
        "rows_minus_201": in_flight,
        "ok": 0 <= in_flight <= connections and history == rows,
        "rule": "0 <= rows gained - 201s <= connections (requests in flight when wrk "
                "stopped), and history rows gained == rows gained",
    }


def summarize(run: WrkRun, rows: dict[str, Any], target: float) -> dict[str, Any]:
    """Creates/s (201s only), latencies, and the verdict."""
    created = rows["created_201"]
    others = {k: v for k, v in run.statuses.items() if k != "201"}
    rate = round(created / run.seconds, 1) if run.seconds else 0.0
    return {
        "creates_per_s": rate,
        "latency_ms": run.latency_ms,
        "non_201": sum(others.values()),
        "other_statuses": others,
        "socket_errors": run.socket_errors,
        "other_cores": run.other_cores,
        "disturbed": run.other_cores > DISTURBED_CORES,
        "target": target,
        "pass": rate >= target and rows["ok"] and run.socket_errors == 0 and not others,
    }


def print_table(run: WrkRun, summary: dict[str, Any], rows: dict[str, Any],
                args: argparse.Namespace) -> None:
    """The compact results table on stdout."""
    lat = run.latency_ms
    print(f"\ncreate: POST {args.body.name} ({args.body.stat().st_size:,} bytes), "
          f"{args.connections} connections, {args.threads} wrk threads, {args.workers} "
          f"workers, pool {args.pool_min}-{args.pool_max}, {args.duration:g} s "
          f"(warm-up {args.warmup:g} s)")
    print(common.format_table(
        ["target", "creates/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "sock err",
         "non-201", "201s", "rows", "srv us/req", "db us/req", "wrk us/req",
         "other cores"],
        [["ours", summary["creates_per_s"], lat["p50"], lat["p95"], lat["p99"], lat["max"],
          run.socket_errors, summary["non_201"], rows["created_201"], rows["rows_gained"],
          run.cpu_us_per_request("server"), run.cpu_us_per_request("db"),
          run.cpu_us_per_request("wrk"), run.other_cores]]))
    print(f"rows check: {rows['rows_gained']:,} rows gained vs {rows['created_201']:,} "
          f"201s (+{rows['rows_minus_201']} in flight at the end), history "
          f"{rows['history_rows_gained']:,}: {'ok' if rows['ok'] else 'MISMATCH'}")
    verdict = "PASS" if summary["pass"] else "FAIL"
    print(f"creates/s: {summary['creates_per_s']:,.1f} (target >= {args.target:g}): "
          f"{verdict}")
    if run.other_cores > DISTURBED_CORES:
        print(f"WARNING: other processes used {run.other_cores:.2f} cores during the run: "
              f"the numbers are disturbed, run again on a quiet machine")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; the results written to JSON."""
    body_arg = str(args.body.resolve())
    result: dict[str, Any] = {"params": common.run_params(args)}
    with common.ours_on_fresh_database(args) as setup:
        db_url, ours = setup.db_url, setup.ours
        result["machine"] = setup.machine
        log(f"warm-up: {args.warmup:g} s")
        common.run_wrk_on(ours, 0, SCRIPT, body_arg, args.connections, args.threads,
                          args.warmup)
        if args.quiet_wait > 0:
            common.wait_for_quiet(args.quiet_wait)
        rows_before = settled_count(db_url, _COUNT_ROWS)
        history_before = int(common.scalar(db_url, _COUNT_HISTORY))
        log(f"measuring: {args.duration:g} s ({rows_before:,} rows so far)")
        measured = common.run_wrk_on(ours, 1, SCRIPT, body_arg, args.connections,
                                     args.threads, args.duration)
        rows_gained = settled_count(db_url, _COUNT_ROWS) - rows_before
        history_gained = int(common.scalar(db_url, _COUNT_HISTORY)) - history_before
        rows = check_rows(measured, rows_gained, history_gained, args.connections)
        result["run"] = measured.as_json()
        result["rows"] = rows
        result |= summarize(measured, rows, args.target)
        if args.profile > 0:
            log(f"profiling our workers with py-spy for {args.profile:g} s")
            result["profile"] = common.profile_run(
                ours, SCRIPT, body_arg, args.connections,
                args.threads, args.profile, args.name)
        result["wrk_command"] = common.wrk_command_line(SCRIPT, body_arg, args)
    print_table(measured, result, rows, args)
    return common.finish(args.name, result,
                         {"ours": result["profile"]} if "profile" in result else {})


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; the exit status."""
    return common.run_main("bench.create", _parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
