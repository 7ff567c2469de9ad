"""Attack benchmark (issue 11): a victim's reads by id and a health prober while 12
attacker clients send the attack mix, against the same two without attackers.

One run: a fresh database, our server (``--workers``, ``AUTH_MODE=off``) on it,
``--patients`` small Patients (the victim's) and ``--big`` Patients of 200 KB (what
the ``_count=1000`` attacks page through), loaded through the API in transactions.
Then two phases of ``--seconds`` each: *quiet* (victim and prober alone) and *attack*
(the same with the attackers). The attack mix, each attacker cycling through it:
expensive searches (``:contains`` with ``_total=accurate``, 1000 ORed parameters,
chains of 200 links), a batch of 100 searches and one of 10,000, ``_count=1000`` over
the big Patients, ``_history?_count=1000``, a 9 MiB body, a JSON Patch doubling
``/name`` 21 times, a slow request head (slowloris).

Reports the victim's read latency p50/p95/p99, the health p99, the attackers' answers
by status, and the workers' peak RSS (VmHWM) in each phase, and the ratios
attack/quiet. Targets: victim p95 <= 100 ms, health p99 <= 50 ms, RSS <= 512 MB.

    .venv/bin/python -m bench.attack                  # ~1 minute
    .venv/bin/python -m bench.attack --seconds 5 --big 50 --name attack-smoke
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import os
import resource
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import orjson

from bench import common
from bench.common import BenchError, Server, log

HEADERS = {"Content-Type": "application/fhir+json"}
PHOTO = base64.b64encode(bytes(range(256)) * 600).decode()  # ~200 KB


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.attack",
                                description=__doc__.split("\n", 1)[0])
    p.add_argument("--seconds", type=float, default=20, help="seconds per phase (20)")
    p.add_argument("--attackers", type=int, default=12, help="attacker clients (12)")
    p.add_argument("--patients", type=int, default=2_000, help="victim Patients (2000)")
    p.add_argument("--big", type=int, default=300, help="Patients of 200 KB (300)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    p.add_argument("--pool-min", type=int, default=2, help="DB_POOL_MIN (2)")
    p.add_argument("--pool-max", type=int, default=10, help="DB_POOL_MAX (10)")
    p.add_argument("--victim-p95-ms", type=float, default=100, help="target (100)")
    p.add_argument("--health-p99-ms", type=float, default=50, help="target (50)")
    p.add_argument("--max-rss-mb", type=float, default=512, help="target (512)")
    p.add_argument("--address-space-mb", type=int, default=3072,
                   help="RLIMIT_AS of the server's processes (3072): a vector it fails to "
                        "bound ends in that process, not in the machine's swap")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--log-level", default="warning", help="LOG_LEVEL of the server")
    p.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL",
                                                         common.DEFAULT_ADMIN_URL),
                   help="PostgreSQL URL used to create and drop the database")
    p.add_argument("--db-name", default=f"bench_attack_{os.getpid()}",
                   help="database to create (must start with bench_)")
    p.add_argument("--keep", action="store_true", help="keep the database and logs")
    p.add_argument("--name", default="attack", help="results file bench/results/NAME.json")
    p.add_argument("--max-seconds", type=float, default=600,
                   help="abort (and clean up) after this long (600)")
    return p


# --- data -------------------------------------------------------------------------------


def _load(base: str, patients: int, big: int) -> None:
    def transaction(entries: list[dict[str, Any]]) -> None:
        response = c.post("", headers=HEADERS, content=orjson.dumps(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}))
        if response.status_code != 200:
            raise BenchError(f"loading failed: {response.status_code} {response.text[:300]}")

    with httpx.Client(base_url=base, timeout=300) as c:
        for start in range(0, patients, 500):
            transaction([{"request": {"method": "PUT", "url": f"Patient/victim-{n}"},
                          "resource": {"resourceType": "Patient", "id": f"victim-{n}",
                                       "name": [{"family": f"Victim{n}", "given": ["Eve"]}]}}
                         for n in range(start, min(start + 500, patients))])
        for start in range(0, big, 25):
            transaction([{"request": {"method": "POST", "url": "Patient"},
                          "resource": {"resourceType": "Patient",
                                       "meta": {"tag": [{"system": "urn:big", "code": "big"}]},
                                       "name": [{"family": "Amplified"}],
                                       "extension": [{"url": "urn:big", "valueString": PHOTO}]}}
                         for _ in range(start, min(start + 25, big))])


# --- the attack mix ---------------------------------------------------------------------


def _slow_head(port: int) -> int:
    """Half a request head, then wait for the server to give up on it."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with contextlib.suppress(OSError):
            data = sock.recv(64)
            return int(data.split()[1]) if data else 0
    return 0


def _mix(port: int) -> list[tuple[str, Callable[[httpx.Client], int]]]:
    def batch(n: int) -> bytes:
        return orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": "Patient?name=Amplified&_count=1000"}}] * n})

    batch_100, batch_10000 = batch(100), batch(10_000)
    big_body = (b'{"resourceType":"Patient","name":[{"text":"' + b"x" * (9 * 2 ** 20)
                + b'"}]}')
    copy_x21 = orjson.dumps([{"op": "copy", "from": "/name", "path": "/name/-"}] * 21)
    ors = "&".join(f"name=n{i}" for i in range(1000))
    return [
        ("contains-total", lambda c: c.get("/Patient", params={
            "name:contains": "e", "_count": "1000", "_total": "accurate"}).status_code),
        ("1000-parameters", lambda c: c.get(f"/Patient?{ors}").status_code),
        ("chain-200", lambda c: c.get(
            "/Patient?organization" + ".partof" * 200 + ".name=x").status_code),
        ("batch-100-searches", lambda c: c.post("", content=batch_100,
                                                headers=HEADERS).status_code),
        ("batch-10000-searches", lambda c: c.post("", content=batch_10000,
                                                  headers=HEADERS).status_code),
        ("count-1000-big", lambda c: c.get("/Patient", params={
            "_tag": "urn:big|big", "_count": "1000"}).status_code),
        ("history-1000", lambda c: c.get("/_history", params={"_count": "1000"}).status_code),
        ("body-9-mib", lambda c: c.post("/Patient", content=big_body,
                                        headers=HEADERS).status_code),
        ("patch-copy-x21", lambda c: c.patch("/Patient/victim-0", content=copy_x21, headers={
            "Content-Type": "application/json-patch+json"}).status_code),
        ("slow-head", lambda c: _slow_head(port)),
    ]


# --- one phase --------------------------------------------------------------------------


def _quantile(samples: Sequence[float], q: float) -> float:
    if len(samples) < 2:
        return samples[0] if samples else 0.0
    return statistics.quantiles(samples, n=100, method="inclusive")[round(q * 100) - 1]


def _phase(server: Server, seconds: float, attackers: int, patients: int) -> dict[str, Any]:
    stop = threading.Event()
    answers: collections.Counter[str] = collections.Counter()
    mix = _mix(int(server.url.rsplit(":", 1)[1]))
    base = f"{server.url}/fhir"

    def attacker(n: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            i = n
            while not stop.is_set():
                name, attack = mix[i % len(mix)]
                try:
                    answers[f"{name} {attack(c)}"] += 1
                except httpx.HTTPError as exc:
                    answers[f"{name} {type(exc).__name__}"] += 1
                i += 1

    health: list[float] = []
    failures: collections.Counter[str] = collections.Counter()

    def prober() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    status = c.get("/api/v1/health").status_code
                except httpx.HTTPError as exc:
                    failures[f"health {type(exc).__name__}"] += 1
                    time.sleep(0.05)
                    continue
                health.append(time.perf_counter() - started)
                if status != 200:
                    failures[f"health {status}"] += 1
                time.sleep(0.02)

    peak = [0]
    workers = set(server.worker_pids())

    def sampler() -> None:
        # a worker the attack kills takes its VmHWM with it: sample while it lives
        while not stop.is_set():
            peak[0] = max(peak[0], _peak_rss(server))
            workers.update(server.worker_pids())
            time.sleep(0.2)

    threads = [threading.Thread(target=attacker, args=(n,), daemon=True)
               for n in range(attackers)]
    threads.append(threading.Thread(target=sampler, daemon=True))
    for t in threads:
        t.start()
    if attackers:
        time.sleep(min(2.0, seconds / 4))  # the attack is under way before measuring
    probe = threading.Thread(target=prober, daemon=True)
    probe.start()
    reads: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base, timeout=30) as c:
        n = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                status = c.get(f"/Patient/victim-{n % patients}").status_code
            except httpx.HTTPError as exc:
                failures[f"read {type(exc).__name__}"] += 1
                time.sleep(0.05)
                continue
            reads.append(time.perf_counter() - started)
            if status != 200:
                failures[f"read {status}"] += 1
            n += 1
    stop.set()
    probe.join(30)
    for t in threads:
        t.join(90)
    common.ensure_alive(server)
    return {
        "victim_reads": len(reads),
        "victim_p50_ms": _quantile(reads, 0.50) * 1000,
        "victim_p95_ms": _quantile(reads, 0.95) * 1000,
        "victim_p99_ms": _quantile(reads, 0.99) * 1000,
        "health_probes": len(health),
        "health_p99_ms": _quantile(health, 0.99) * 1000,
        "victim_failures": dict(failures),
        "attacks": dict(sorted(answers.items())),
        "peak_rss_mb": max(peak[0], _peak_rss(server)) / 2 ** 20,
        # workers seen beyond the ones there: replacements of workers that died
        "worker_restarts": len(workers) - max(1, len(server.worker_pids())),
    }


def _peak_rss(server: Server) -> int:
    """The largest VmHWM (bytes) among the workers (or the server, with one)."""
    peak = 0
    for pid in [server.proc.pid, *server.worker_pids()]:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
    return peak


# --- the run ----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not args.db_name.startswith("bench_"):
        raise BenchError("--db-name must start with bench_")
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(common.work_dir(args.keep))
        db_url = stack.enter_context(common.bench_database(args.admin_url, args.db_name,
                                                           args.keep))
        with common.bounded_run(args.max_seconds):
            machine = common.machine_info(db_url)
            server = common.start_ours(stack, db_url, args.workers, args.pool_min,
                                       args.pool_max, tmp, log_level=args.log_level)
            cap = args.address_space_mb * 2 ** 20
            for pid in [server.proc.pid, *server.worker_pids()]:
                resource.prlimit(pid, resource.RLIMIT_AS, (cap, cap))
            log(f"loading {args.patients} Patients and {args.big} of 200 KB")
            _load(f"{server.url}/fhir", args.patients, args.big)
            log(f"quiet phase: {args.seconds:g} s")
            quiet = _phase(server, args.seconds, 0, args.patients)
            log(f"attack phase: {args.seconds:g} s, {args.attackers} attackers")
            attack = _phase(server, args.seconds, args.attackers, args.patients)
    checks = {
        "victim_p95": attack["victim_reads"] > 0
        and attack["victim_p95_ms"] <= args.victim_p95_ms,
        "health_p99": attack["health_probes"] > 0
        and attack["health_p99_ms"] <= args.health_p99_ms,
        "rss": attack["peak_rss_mb"] <= args.max_rss_mb,
        "victim_answered": not attack["victim_failures"],
        "no_worker_died": attack["worker_restarts"] == 0,
    }
    ratios = {k: attack[k] / quiet[k] if quiet[k] else None
              for k in ("victim_p50_ms", "victim_p95_ms", "victim_p99_ms", "health_p99_ms")}
    rows = [[phase, r["victim_reads"], r["victim_p50_ms"], r["victim_p95_ms"],
             r["victim_p99_ms"], r["health_p99_ms"], r["peak_rss_mb"]]
            for phase, r in (("quiet", quiet), ("attack", attack))]
    print(common.format_table(["phase", "reads", "p50 ms", "p95 ms", "p99 ms",
                               "health p99 ms", "peak RSS MB"], rows))
    print("ratios attack/quiet: " + ", ".join(
        f"{k} {v:.2f}" if v is not None else f"{k} -" for k, v in ratios.items()))
    print("attacks: " + ", ".join(f"{k}: {v}" for k, v in attack["attacks"].items()))
    print("targets: " + ", ".join(f"{k} {'PASS' if ok else 'FAIL'}"
                                  for k, ok in checks.items()))
    result = {"params": {k: v for k, v in vars(args).items() if k != "admin_url"},
              "machine": machine, "quiet": quiet, "attack": attack, "ratios": ratios,
              "checks": checks, "pass": all(checks.values())}
    return common.finish(args.name, result, {})


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_main("bench.attack", _parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
