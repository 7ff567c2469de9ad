"""Read benchmark: ``GET /fhir/Patient/{id}`` of our server against the bare baseline.

One run: a fresh database, our server (``fhir-server serve``, N workers) migrating it,
10,000 copies of the official Patient example created through our API (so the rows are
exactly what the server writes), then the baseline (``bench/baseline.py``, same workers,
same pool) on the same database. Both are loaded by the same wrk with the same Lua
script (random ids among those loaded), alternately: a warm-up each, then ``--rounds``
rounds of ``--duration`` seconds each, the order flipping every round. Everything
started is stopped and the database dropped (unless ``--keep``).

    .venv/bin/python -m bench.read            # ~3 minutes
    .venv/bin/python -m bench.read --rounds 1 --duration 10 --patients 2000   # quick

Results: a table on stdout, JSON in ``bench/results/<name>.json``. Exit status 1 with
``--check`` when ours is below ``--target`` x the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import urllib.request
from collections.abc import Sequence
from typing import Any

from bench import common
from bench.common import BenchError, Server, WrkRun, log

SCRIPT = common.LUA / "read.lua"
#: Cores used by other processes above which a run's numbers are flagged as disturbed.
DISTURBED_CORES = 0.25


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.read",
                                description=__doc__.split("\n", 1)[0])
    p.add_argument("--patients", type=int, default=10_000, help="Patients to load (10000)")
    common.add_load_args(p, duration_help="seconds per round (20)", each=" of each")
    p.add_argument("--rounds", type=int, default=2, help="measured rounds of each (2)")
    p.add_argument("--target", type=float, default=0.6, help="wanted ratio ours/baseline")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the ratio is below --target")
    common.add_run_args(p, "read", max_seconds=900,
                        keep_help="keep the database, logs and id file afterwards")
    return p


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def check_same_answer(ours: Server, baseline: Server, ids: Sequence[str]) -> None:
    """Both must send the same bytes for the same id, else the comparison is void."""
    for rid in (ids[0], ids[len(ids) // 2], ids[-1]):
        path = f"/fhir/Patient/{rid}"
        o_status, o_type, o_body = _get(ours.url + path)
        b_status, b_type, b_body = _get(baseline.url + path)
        if (o_status, o_body) != (b_status, b_body):
            raise BenchError(f"{path}: ours answered {o_status} ({len(o_body)} bytes), the "
                             f"baseline {b_status} ({len(b_body)} bytes): not the same")
        if o_type.split(";")[0] != b_type.split(";")[0]:
            raise BenchError(f"{path}: media types differ: {o_type!r} vs {b_type!r}")


def measure(targets: Sequence[Server], ids_file: str, args: argparse.Namespace) -> list[WrkRun]:
    """Warm each target up, then alternate measured rounds, flipping the order each round."""
    for server in targets:
        log(f"warm-up {server.name}: {args.warmup:g} s")
        common.run_wrk_on(server, 0, SCRIPT, ids_file, args.connections, args.threads,
                          args.warmup)
    runs: list[WrkRun] = []
    for round_no in range(1, args.rounds + 1):
        order = targets if round_no % 2 else list(reversed(targets))
        for server in order:
            if args.quiet_wait > 0:
                common.wait_for_quiet(args.quiet_wait)
            log(f"round {round_no}/{args.rounds} {server.name}: {args.duration:g} s")
            run = common.run_wrk_on(server, round_no, SCRIPT, ids_file, args.connections,
                                    args.threads, args.duration)
            log(f"  {run.rps:,.0f} req/s, p95 {run.latency_ms['p95']:.2f} ms, "
                f"errors {run.socket_errors}, non-2xx {run.non_2xx}")
            runs.append(run)
    return runs


def report(runs: Sequence[WrkRun], args: argparse.Namespace) -> dict[str, Any]:
    """Per-target totals and the ratio."""
    ours = common.combine([r for r in runs if r.label == "ours"])
    baseline = common.combine([r for r in runs if r.label == "baseline"])
    ratio = round(ours["rps"] / baseline["rps"], 3) if baseline["rps"] else 0.0
    clean = all(t["socket_errors"] == 0 and t["non_2xx"] == 0 for t in (ours, baseline))
    # CPU per request of everything involved (server, its backends, wrk): when the cores
    # are saturated, throughput is their inverse, and it is less disturbed by other load.
    cost = {label: sum(t["cpu_us_per_request"].values())
            for label, t in (("ours", ours), ("baseline", baseline))}
    cpu_ratio = round(cost["baseline"] / cost["ours"], 3) if cost["ours"] else 0.0
    other = max(ours["other_cores_max"], baseline["other_cores_max"])
    # Each round measures both back to back: its ratio is little affected by drift.
    by_round = {(r.label, r.round): r.rps for r in runs}
    pairs = [by_round[("ours", n)] / by_round[("baseline", n)]
             for (label, n) in by_round
             if label == "ours" and by_round.get(("baseline", n))]
    round_ratio = round(statistics.median(pairs), 3) if pairs else 0.0
    return {"ours": ours, "baseline": baseline, "ratio": ratio, "target": args.target,
            "round_ratios": [round(p, 3) for p in pairs], "median_round_ratio": round_ratio,
            "cpu_ratio": cpu_ratio, "other_cores_max": other,
            "disturbed": other > DISTURBED_CORES,
            "no_errors": clean, "pass": ratio >= args.target and clean}


def print_table(runs: Sequence[WrkRun], summary: dict[str, Any],
                args: argparse.Namespace) -> None:
    """The compact results table on stdout."""
    headers = ["target", "round", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
               "sock err", "non-2xx", "srv us/req", "db us/req", "wrk us/req",
               "other cores"]
    rows: list[list[object]] = [
        [r.label, str(r.round), r.rps, r.latency_ms["p50"], r.latency_ms["p95"],
         r.latency_ms["p99"], r.latency_ms["max"], r.socket_errors, r.non_2xx,
         r.cpu_us_per_request("server"), r.cpu_us_per_request("db"),
         r.cpu_us_per_request("wrk"), r.other_cores]
        for r in runs]
    for label in ("ours", "baseline"):
        t = summary[label]
        cpu = t["cpu_us_per_request"]
        rows.append([label, "all", t["rps"], t["latency_ms"]["p50"], t["latency_ms"]["p95"],
                     t["latency_ms"]["p99"], t["latency_ms"]["max"], t["socket_errors"],
                     t["non_2xx"], cpu.get("server", 0.0), cpu.get("db", 0.0),
                     cpu.get("wrk", 0.0), t["other_cores_max"]])
    print(f"\nread: {args.patients:,} Patients, {args.connections} connections, "
          f"{args.threads} wrk threads, {args.workers} workers each, pool "
          f"{args.pool_min}-{args.pool_max}, {args.rounds} x {args.duration:g} s rounds "
          f"(warm-up {args.warmup:g} s)\n'all': req/s over all rounds, median latencies; "
          f"us/req: CPU time per request of the server processes, the database's "
          f"backends and wrk; other cores: CPU used by anything else during the round")
    print(common.format_table(headers, rows))
    verdict = "PASS" if summary["pass"] else "FAIL"
    print(f"ratio ours/baseline: {summary['ratio']:.3f} (target >= {args.target:g}): "
          f"{verdict}; median of the rounds' ratios: {summary['median_round_ratio']:.3f}; "
          f"CPU-cost ratio baseline/ours: {summary['cpu_ratio']:.3f}")
    if summary["disturbed"]:
        print(f"WARNING: other processes used up to {summary['other_cores_max']:.2f} cores "
              f"during a round: the numbers are disturbed, run again on a quiet machine")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; the results written to JSON."""
    body = common.PATIENT_EXAMPLE.read_bytes()
    result: dict[str, Any] = {"params": common.run_params(args)}
    with common.ours_on_fresh_database(args) as setup:
        stack, tmp, db_url, ours = setup.stack, setup.tmp, setup.db_url, setup.ours
        result["machine"] = setup.machine
        log(f"loading {args.patients:,} Patients through our API (32 connections)")
        try:
            loaded = common.load_patients(ours.url, body, args.patients, concurrency=32)
        except BenchError as exc:
            raise BenchError(f"{exc}\nours' log:\n{ours.log_tail()}") from exc
        rows = common.scalar(db_url, "SELECT count(*) FROM resource"
                                     " WHERE resource_type = 'Patient' AND NOT deleted")
        log(f"loaded {len(loaded.ids):,} in {loaded.seconds:.1f} s ({loaded.rate:,.0f}/s, "
            f"{loaded.failures} failures); {rows:,} rows")
        if len(loaded.ids) != args.patients or rows != args.patients:
            raise BenchError(f"wanted {args.patients} Patients, got {len(loaded.ids)} ids "
                             f"and {rows} rows")
        result["load"] = {"patients": len(loaded.ids), "seconds": round(loaded.seconds, 2),
                          "creates_per_s": round(loaded.rate, 1), "failures": loaded.failures,
                          "client": "python asyncio, 32 connections"}
        ids_file = tmp / "ids.txt"
        ids_file.write_text("\n".join(loaded.ids) + "\n")
        common.execute(db_url, "VACUUM ANALYZE resource")

        baseline = common.start_baseline(stack, db_url, args.workers, args.pool_min,
                                         args.pool_max, tmp, log_level=args.log_level)
        check_same_answer(ours, baseline, loaded.ids)
        runs = measure([ours, baseline], str(ids_file), args)
        result["runs"] = [r.as_json() for r in runs]
        result |= report(runs, args)
        if args.profile > 0:
            result["profile"] = {}
            for server in (ours, baseline):
                log(f"profiling {server.name}'s workers with py-spy for "
                    f"{args.profile:g} s")
                result["profile"][server.name] = common.profile_run(
                    server, SCRIPT, str(ids_file), args.connections, args.threads,
                    args.profile, f"{args.name}-{server.name}")
        result["wrk_command"] = common.wrk_command_line(SCRIPT, "IDS_FILE", args)
    print_table(runs, result, args)
    return common.finish(args.name, result, result.get("profile", {}))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; the exit status."""
    return common.run_main("bench.read", _parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
