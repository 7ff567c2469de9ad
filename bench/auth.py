"""Auth benchmark: ``GET /fhir/Patient/{id}`` with authorization on against off.

One run: a fresh database, two servers on it (both on loopback, same workers and pool):
``AUTH_MODE=smart`` and ``AUTH_MODE=off``. ``--patients`` copies of the official Patient
example are created through the server without authorization, then one access token
(``system/*.read``, the built-in issuer, made in-process with the server's signing keys
as ``fhir-server token`` makes it) is reused for every request, as clients do. The same
wrk and Lua script load both (``-H 'Authorization: Bearer ...'`` sent to both, so that
requests are the same bytes), alternately: a warm-up each, then ``--rounds`` rounds of
``--duration`` seconds each, the order flipping every round. ``AUDIT`` is the same for
both (off unless ``--audit``): the audit trail is measured elsewhere, this is the cost of
verifying the token and applying its scope.

    .venv/bin/python -m bench.auth            # ~2 minutes
    .venv/bin/python -m bench.auth --rounds 2 --duration 10 --patients 2000   # quick

Results: a table on stdout, JSON in ``bench/results/<name>.json`` (``auth-read``). Exit
status 1 with ``--check`` when on/off is below ``--target`` (0.9).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import common
from bench.common import BenchError, Server, WrkRun, log
from fhir_server.auth.keys import read_keys
from fhir_server.auth.tokens import issue_access_token, issuer_for

SCRIPT = common.LUA / "read.lua"
SCOPE = "system/*.read"
ON, OFF = "auth-on", "auth-off"
#: Cores used by other processes above which a run's numbers are flagged as disturbed.
DISTURBED_CORES = 0.25


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.auth",
                                description=__doc__.split("\n", 1)[0])
    p.add_argument("--patients", type=int, default=5_000, help="Patients to load (5000)")
    common.add_load_args(p, duration_help="seconds per round (15)", each=" of each")
    p.set_defaults(duration=15)
    p.add_argument("--rounds", type=int, default=2, help="measured rounds of each (2)")
    p.add_argument("--target", type=float, default=0.9, help="wanted ratio on/off (0.9)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the ratio is below --target")
    p.add_argument("--audit", action="store_true",
                   help="AUDIT=true on both servers (default: false on both)")
    common.add_run_args(p, "auth", max_seconds=900,
                        keep_help="keep the database, logs and id file afterwards")
    p.set_defaults(name="auth-read")
    return p


def start(stack: contextlib.ExitStack, name: str, db_url: str, auth_mode: str,
          args: argparse.Namespace, log_dir: Path) -> Server:
    """``fhir-server serve`` on loopback with ``AUTH_MODE=auth_mode``, ready."""
    port = common.free_port()
    env = common.server_env(db_url, args.pool_min, args.pool_max, args.log_level) | {
        "MIGRATE_ON_START": "true", "AUTH_MODE": auth_mode, "REDIS_URL": "",
        "RATE_LIMIT_PER_MINUTE": "0", "AUDIT": "true" if args.audit else "false"}
    server = common.start_server(
        name, [common.PYTHON, "-m", "bench.serve_ours", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(args.workers)], env, port, log_dir)
    stack.callback(_stop, server)
    log(f"{name}: pid {server.proc.pid} on {server.url} (AUTH_MODE={auth_mode})")
    common.wait_until(server, "/api/v1/ready", 200, 90)
    return server


def _stop(server: Server) -> None:
    log(f"{server.name}: stopping pid {server.proc.pid}")
    server.stop()


def _get(url: str, token: str | None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": common.FHIR_JSON})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_servers(on: Server, off: Server, token: str, ids: Sequence[str]) -> None:
    """On refuses a request without the token; both send the same bytes with it."""
    path = f"/fhir/Patient/{ids[0]}"
    status, _ = _get(on.url + path, None)
    if status != 401:
        raise BenchError(f"{on.name} answered {status} without a token: is auth on?")
    for rid in (ids[0], ids[len(ids) // 2], ids[-1]):
        path = f"/fhir/Patient/{rid}"
        a, b = _get(on.url + path, token), _get(off.url + path, token)
        if a[0] != 200 or a != b:
            raise BenchError(f"{path}: {on.name} answered {a[0]} ({len(a[1])} bytes), "
                             f"{off.name} {b[0]} ({len(b[1])} bytes): not the same")


def wrk_command(server: Server, token: str, ids_file: str, args: argparse.Namespace,
                seconds: float) -> list[str]:
    cmd = common.wrk_command(server.url, SCRIPT, ids_file, args.connections, args.threads,
                             seconds)
    at = cmd.index("-s")
    return [*cmd[:at], "-H", f"Authorization: Bearer {token}", *cmd[at:]]


def run_wrk(server: Server, round_no: int, token: str, ids_file: str,
            args: argparse.Namespace, seconds: float) -> WrkRun:
    """One wrk run with the token's header, CPU of server, database and wrk measured
    (what ``common.run_wrk_on`` measures)."""
    cmd = wrk_command(server, token, ids_file, args, seconds)
    before = common.cpu_snapshot(server)
    machine_before = common.machine_busy_seconds()
    load_before = os.getloadavg()[0]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30,
                          check=False, cwd=common.ROOT)
    after_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    common.ensure_alive(server)
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    run = common.parse_wrk_output(proc.stdout, server.name, round_no, round(load_before, 2))
    after = common.cpu_snapshot(server)
    run.machine_busy_s = round(common.machine_busy_seconds() - machine_before, 3)
    run.cpu_s["wrk"] = round(after_usage.ru_utime + after_usage.ru_stime
                             - usage.ru_utime - usage.ru_stime, 3)
    for who in ("server", "db"):
        used = sum(t - before[who].get(pid, 0) for pid, t in after[who].items())
        run.cpu_s[who] = round(used / os.sysconf("SC_CLK_TCK"), 3)
    return run


def measure(targets: Sequence[Server], token: str, ids_file: str,
            args: argparse.Namespace) -> list[WrkRun]:
    for server in targets:
        log(f"warm-up {server.name}: {args.warmup:g} s")
        run_wrk(server, 0, token, ids_file, args, args.warmup)
    runs: list[WrkRun] = []
    for round_no in range(1, args.rounds + 1):
        order = targets if round_no % 2 else list(reversed(targets))
        for server in order:
            if args.quiet_wait > 0:
                common.wait_for_quiet(args.quiet_wait)
            log(f"round {round_no}/{args.rounds} {server.name}: {args.duration:g} s")
            run = run_wrk(server, round_no, token, ids_file, args, args.duration)
            log(f"  {run.rps:,.0f} req/s, p95 {run.latency_ms['p95']:.2f} ms, "
                f"errors {run.socket_errors}, non-2xx {run.non_2xx}")
            runs.append(run)
    return runs


def report(runs: Sequence[WrkRun], args: argparse.Namespace) -> dict[str, Any]:
    on = common.combine([r for r in runs if r.label == ON])
    off = common.combine([r for r in runs if r.label == OFF])
    ratio = round(on["rps"] / off["rps"], 3) if off["rps"] else 0.0
    clean = all(t["socket_errors"] == 0 and t["non_2xx"] == 0 for t in (on, off))
    by_round = {(r.label, r.round): r.rps for r in runs}
    pairs = [by_round[(ON, n)] / by_round[(OFF, n)] for (label, n) in by_round
             if label == ON and by_round.get((OFF, n))]
    cost = {label: sum(t["cpu_us_per_request"].values()) for label, t in (
        (ON, on), (OFF, off))}
    other = max(on["other_cores_max"], off["other_cores_max"])
    return {ON: on, OFF: off, "ratio": ratio, "target": args.target,
            "round_ratios": [round(p, 3) for p in pairs],
            "median_round_ratio": round(statistics.median(pairs), 3) if pairs else 0.0,
            "cpu_ratio": round(cost[OFF] / cost[ON], 3) if cost[ON] else 0.0,
            "other_cores_max": other, "disturbed": other > DISTURBED_CORES,
            "no_errors": clean, "pass": ratio >= args.target and clean}


def print_table(runs: Sequence[WrkRun], summary: dict[str, Any],
                args: argparse.Namespace) -> None:
    headers = ["target", "round", "req/s", "p50 ms", "p95 ms", "p99 ms", "sock err",
               "non-2xx", "srv us/req", "db us/req", "other cores"]
    rows: list[list[object]] = [
        [r.label, str(r.round), r.rps, r.latency_ms["p50"], r.latency_ms["p95"],
         r.latency_ms["p99"], r.socket_errors, r.non_2xx, r.cpu_us_per_request("server"),
         r.cpu_us_per_request("db"), r.other_cores] for r in runs]
    for label in (ON, OFF):
        t = summary[label]
        cpu = t["cpu_us_per_request"]
        rows.append([label, "all", t["rps"], t["latency_ms"]["p50"], t["latency_ms"]["p95"],
                     t["latency_ms"]["p99"], t["socket_errors"], t["non_2xx"],
                     cpu.get("server", 0.0), cpu.get("db", 0.0), t["other_cores_max"]])
    print(f"\nauth: GET Patient/{{id}}, {args.patients:,} Patients, token {SCOPE!r} reused, "
          f"{args.connections} connections, {args.threads} wrk threads, {args.workers} "
          f"workers each, {args.rounds} x {args.duration:g} s rounds, AUDIT="
          f"{'true' if args.audit else 'false'} on both")
    print(common.format_table(headers, rows))
    verdict = "PASS" if summary["pass"] else "FAIL"
    print(f"ratio on/off: {summary['ratio']:.3f} (target >= {args.target:g}): {verdict}; "
          f"median of the rounds' ratios: {summary['median_round_ratio']:.3f}; "
          f"CPU-cost ratio off/on: {summary['cpu_ratio']:.3f}")
    if summary["disturbed"]:
        print(f"WARNING: other processes used up to {summary['other_cores_max']:.2f} cores "
              f"during a round: the numbers are disturbed, run again on a quiet machine")


def profile(server: Server, token: str, ids_file: str, args: argparse.Namespace
            ) -> dict[str, Any]:
    """py-spy on ``server``'s workers during a wrk run of ``--profile`` seconds."""
    out_dir = common.RESULTS / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{args.name}-{server.name}"
    for old in out_dir.glob(f"{name}-worker-*.txt"):
        old.unlink()
    profilers = common.start_profilers(server, args.profile, out_dir, name)
    time.sleep(1.0)
    run = run_wrk(server, 0, token, ids_file, args, args.profile)
    paths = []
    for proc, path in profilers:
        try:
            proc.communicate(timeout=args.profile + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        paths.append(path)
    return {"wrk": run.as_json(), "files": [str(p.relative_to(common.ROOT)) for p in paths],
            **common.collapse_top(paths)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    wrk = common.wrk_version()
    body = common.PATIENT_EXAMPLE.read_bytes()
    result: dict[str, Any] = {"params": common.run_params(args)}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(common.work_dir(args.keep))
        db_url = stack.enter_context(common.bench_database(args.admin_url, args.db_name,
                                                           args.keep))
        with common.bounded_run(args.max_seconds):
            result["machine"] = common.machine_info(db_url) | {"wrk": wrk}
            off = start(stack, OFF, db_url, "off", args, tmp)
            on = start(stack, ON, db_url, "smart", args, tmp)
            log(f"loading {args.patients:,} Patients through {off.name} (32 connections)")
            loaded = common.load_patients(off.url, body, args.patients, concurrency=32)
            if len(loaded.ids) != args.patients:
                raise BenchError(f"wanted {args.patients} Patients, got {len(loaded.ids)}")
            result["load"] = {"patients": len(loaded.ids),
                              "seconds": round(loaded.seconds, 2)}
            ids_file = tmp / "ids.txt"
            ids_file.write_text("\n".join(loaded.ids) + "\n")
            common.execute(db_url, "VACUUM ANALYZE resource")
            base = f"{on.url}/fhir"
            token, _ = issue_access_token(read_keys(db_url), issuer=issuer_for(base),
                                          audience=base, client_id="bench", scope=SCOPE,
                                          ttl=max(3600, int(args.max_seconds) + 600))
            check_servers(on, off, token, loaded.ids)
            runs = measure([on, off], token, str(ids_file), args)
            result["runs"] = [r.as_json() for r in runs]
            result |= report(runs, args)
            if args.profile > 0:
                log(f"profiling {on.name}'s workers with py-spy for {args.profile:g} s")
                result["profile"] = {on.name: profile(on, token, str(ids_file), args)}
            result["wrk_command"] = " ".join(
                wrk_command(Server("x", on.proc, "http://127.0.0.1:PORT", on.log_path),
                            "TOKEN", "IDS_FILE", args, args.duration))
    print_table(runs, result, args)
    return common.finish(args.name, result, result.get("profile", {}))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; the exit status."""
    return common.run_main("bench.auth", _parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
