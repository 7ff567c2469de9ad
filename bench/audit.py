"""Audit benchmark: reads with the audit trail on (``AUDIT=true``) against off.

One run: a fresh database, two of our servers on it (``AUTH_MODE=off``, same workers
and pool), one with ``AUDIT=true`` and one with ``AUDIT=false``; Patients created
through the unaudited one; then the same wrk load (``GET /fhir/Patient/{id}``, random
ids, bench/lua/read.lua) on each, alternately, a warm-up each and ``--rounds`` rounds
flipping the order. Every audited read stores its AuditEvent (staged, group-committed)
before it is answered, and the servers' movers turn staged events into resources
(history, index rows) meanwhile, so the ratio is the price of the trail. Before each
round the staging table is drained (the movers' work of one round is not charged to
the next); at the end of each audited round the backlog still staged and the age of
its oldest event are recorded (the search lag: if the movers fell behind, it shows).
It also counts the events stored, which must equal the audited requests.

    .venv/bin/python -m bench.audit                       # ~2 minutes
    .venv/bin/python -m bench.audit --rounds 1 --duration 5 --patients 1000   # quick

Results: a table on stdout, JSON in ``bench/results/<name>.json``; exit status 1 with
``--check`` when audited reads are below ``--target`` x the unaudited ones.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import common
from bench.common import BenchError, Server, WrkRun, log

SCRIPT = common.LUA / "read.lua"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.audit",
                                description=__doc__.split("\n", 1)[0])
    p.add_argument("--patients", type=int, default=2_000, help="Patients to load (2000)")
    common.add_load_args(p, duration_help="seconds per round (20)", each=" of each")
    p.add_argument("--rounds", type=int, default=2, help="measured rounds of each (2)")
    p.add_argument("--target", type=float, default=0.9,
                   help="wanted ratio audited/unaudited (0.9)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the ratio is below --target")
    common.add_run_args(p, "audit", max_seconds=900,
                        keep_help="keep the database, logs and id file afterwards")
    return p


def _start(stack: contextlib.ExitStack, name: str, db_url: str, audit: bool,
           args: argparse.Namespace, log_dir: Path) -> Server:
    port = common.free_port()
    env = common.server_env(db_url, args.pool_min, args.pool_max, args.log_level) | {
        "MIGRATE_ON_START": "true", "AUTH_MODE": "off", "AUDIT": str(audit).lower()}
    server = common.start_server(
        name, [common.PYTHON, "-m", "bench.serve_ours", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(args.workers)], env, port, log_dir)
    stack.callback(server.stop)
    log(f"{name}: pid {server.proc.pid} on {server.url} (AUDIT={audit})")
    common.wait_until(server, "/api/v1/ready", 200, 90)
    return server


def _events(db_url: str) -> int:
    """Events stored: resources and staged."""
    return int(common.scalar(db_url, "SELECT (SELECT count(*) FROM resource"
                                     " WHERE resource_type = 'AuditEvent')"
                                     " + (SELECT count(*) FROM audit_staging)"))


def _backlog(db_url: str) -> tuple[int, float]:
    """Events staged, and the age in seconds of the oldest."""
    row = common.scalar(db_url, "SELECT array[count(*), coalesce(extract(epoch FROM"
                                " now() - min(staged_at)), 0)] FROM audit_staging")
    return int(row[0]), float(row[1])


def _drained(db_url: str, limit: float = 60.0) -> float:
    """Wait until nothing is staged; the seconds waited."""
    start = time.monotonic()
    while _backlog(db_url)[0] and time.monotonic() - start < limit:
        time.sleep(0.1)
    return round(time.monotonic() - start, 2)


def measure(targets: Sequence[Server], ids_file: str, db_url: str,
            args: argparse.Namespace
            ) -> tuple[list[WrkRun], dict[str, int], dict[str, dict[str, Any]]]:
    """Warm-ups, then alternating rounds; the runs, the events each target stored and
    the staging backlog at the end of each round."""
    for server in targets:
        log(f"warm-up {server.name}: {args.warmup:g} s")
        common.run_wrk_on(server, 0, SCRIPT, ids_file, args.connections, args.threads,
                          args.warmup)
    runs: list[WrkRun] = []
    stored = {s.name: 0 for s in targets}
    backlog: dict[str, dict[str, Any]] = {}
    for round_no in range(1, args.rounds + 1):
        order = targets if round_no % 2 else list(reversed(targets))
        for server in order:
            if args.quiet_wait > 0:
                common.wait_for_quiet(args.quiet_wait)
            waited = _drained(db_url)
            before = _events(db_url)
            log(f"round {round_no}/{args.rounds} {server.name}: {args.duration:g} s"
                f" (drained in {waited:g} s)")
            run = common.run_wrk_on(server, round_no, SCRIPT, ids_file, args.connections,
                                    args.threads, args.duration)
            staged, oldest = _backlog(db_url)
            backlog[f"{server.name}-{round_no}"] = {"staged_at_end": staged,
                                                    "oldest_staged_s": round(oldest, 2),
                                                    "drain_wait_before_s": waited}
            stored[server.name] += _events(db_url) - before
            log(f"  {run.rps:,.0f} req/s, p95 {run.latency_ms['p95']:.2f} ms, "
                f"errors {run.socket_errors}, non-2xx {run.non_2xx}, staged at the end"
                f" {staged} (oldest {oldest:.2f} s)")
            runs.append(run)
    return runs, stored, backlog


def report(runs: Sequence[WrkRun], stored: dict[str, int],
           args: argparse.Namespace) -> dict[str, Any]:
    """Totals per target, the ratio, and whether every audited read left its event."""
    audited = common.combine([r for r in runs if r.label == "audited"])
    plain = common.combine([r for r in runs if r.label == "unaudited"])
    ratio = round(audited["rps"] / plain["rps"], 3) if plain["rps"] else 0.0
    by_round = {(r.label, r.round): r.rps for r in runs}
    pairs = [by_round[("audited", n)] / by_round[("unaudited", n)]
             for (label, n) in by_round if label == "audited"
             and by_round.get(("unaudited", n))]
    requests = sum(r.requests for r in runs if r.label == "audited")
    clean = all(t["socket_errors"] == 0 and t["non_2xx"] == 0 for t in (audited, plain))
    # wrk counts the requests it got answers to; a request cut off at the end of a
    # round may still have stored its event, so the events may exceed it slightly.
    complete = stored["unaudited"] == 0 and stored["audited"] >= requests
    return {"audited": audited, "unaudited": plain, "ratio": ratio, "target": args.target,
            "round_ratios": [round(p, 3) for p in pairs],
            "median_round_ratio": round(statistics.median(pairs), 3) if pairs else 0.0,
            "audited_requests": requests, "events_stored": stored,
            "every_request_audited": complete, "no_errors": clean,
            "pass": ratio >= args.target and clean and complete}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; the results written to JSON."""
    wrk = common.wrk_version()
    result: dict[str, Any] = {"params": common.run_params(args)}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(common.work_dir(args.keep))
        db_url = stack.enter_context(common.bench_database(args.admin_url, args.db_name,
                                                           args.keep))
        with common.bounded_run(args.max_seconds):
            result["machine"] = common.machine_info(db_url) | {"wrk": wrk}
            plain = _start(stack, "unaudited", db_url, False, args, tmp)
            audited = _start(stack, "audited", db_url, True, args, tmp)
            loaded = common.load_patients(plain.url, common.PATIENT_EXAMPLE.read_bytes(),
                                          args.patients, concurrency=32)
            if len(loaded.ids) != args.patients:
                raise BenchError(f"wanted {args.patients} Patients, got {len(loaded.ids)}")
            ids_file = tmp / "ids.txt"
            ids_file.write_text("\n".join(loaded.ids) + "\n")
            common.execute(db_url, "VACUUM ANALYZE resource")
            runs, stored, backlog = measure([audited, plain], str(ids_file), db_url, args)
            result["runs"] = [r.as_json() for r in runs]
            result["staging"] = backlog
            result["max_staged_age_s"] = max(
                (b["oldest_staged_s"] for b in backlog.values()), default=0.0)
            result |= report(runs, stored, args)
            result["wrk_command"] = common.wrk_command_line(SCRIPT, "IDS_FILE", args)
    for label in ("audited", "unaudited"):
        t = result[label]
        print(f"{label:>10}: {t['rps']:>9,.0f} req/s  p50 {t['latency_ms']['p50']:.2f} ms"
              f"  p95 {t['latency_ms']['p95']:.2f} ms  p99 {t['latency_ms']['p99']:.2f} ms"
              f"  non-2xx {t['non_2xx']}  events {result['events_stored'][label]:,}")
    verdict = "PASS" if result["pass"] else "FAIL"
    print(f"ratio audited/unaudited: {result['ratio']:.3f} (target >= {args.target:g}): "
          f"{verdict}; rounds {result['round_ratios']}; every audited request has its "
          f"event: {result['every_request_audited']}")
    return common.finish(args.name, result, {})


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; the exit status."""
    return common.run_main("bench.audit", _parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
