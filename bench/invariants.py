"""Invariant cost: create latency with the R4 invariants evaluated against without.

One run: a fresh database and two servers on it, ``off`` (``VALIDATE_INVARIANTS=false``)
and ``on`` (the default). One client posts three official examples with realistic
content - ``Patient-example.json`` (names with periods, contacts, telecoms, an
extension-free managing organization reference), ``Encounter-f203.json`` (periods,
participants, diagnoses, hospitalization, many references) and
``Observation-blood-pressure.json`` (components, a narrative, identifiers, references)
- to each server, one request at a time, in alternating rounds (off, on, on, off...)
so that the machine's noise falls on both alike; the latencies of all rounds are
pooled per server and resource. Then the invariant stage alone, in this process:
microseconds per ``Invariants.issues`` of each body.

    .venv/bin/python -m bench.invariants          # ~1-2 minutes

Results: a table on stdout, JSON in ``bench/results/<name>.json``. Exit status 1 with
``--check`` when an ``on`` p50 exceeds the ``off`` one by more than ``--target`` %.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from bench import common
from bench.common import log
from fhir_server.definitions import Definitions
from fhir_server.paths import data_dir
from fhir_server.validation.invariants import Invariants
from tests.data import fhir_r4_example

BODIES = {"Patient": "Patient-example.json", "Encounter": "Encounter-f203.json",
          "Observation": "Observation-blood-pressure.json"}
#: a Patient that breaks pat-1: the ``on`` server must refuse it
BROKEN = b'{"resourceType":"Patient","contact":[{"gender":"male"}]}'


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.invariants",
                                description=__doc__.split("\n", 1)[0])
    p.add_argument("--creates", type=int, default=20, help="creates per type per round (20)")
    p.add_argument("--rounds", type=int, default=20, help="rounds per server (20)")
    p.add_argument("--warmup", type=int, default=50, help="warm-up creates per type (50)")
    p.add_argument("--target", type=float, default=25,
                   help="most extra p50 latency with invariants, in %% (25)")
    p.add_argument("--check", action="store_true", help="exit 1 when above --target")
    p.add_argument("--workers", type=int, default=1, help="worker processes each (1)")
    common.add_run_args(p, "invariants", max_seconds=900, keep_help="keep the database")
    return p


def stage_cost(bodies: dict[str, bytes], repeat: int = 500) -> dict[str, float]:
    """Microseconds per ``Invariants.issues`` of each body, median of 5 batches."""
    invariants = Invariants.load(Definitions.load(), data_dir("profiles"))
    out = {}
    for kind, raw in bodies.items():
        resource = orjson.loads(raw)
        if any(i.severity in ("error", "fatal") for i in invariants.issues(resource)):
            raise common.BenchError(f"{BODIES[kind]} breaks an invariant")
        batches = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(repeat):
                invariants.issues(resource)
            batches.append((time.perf_counter() - started) / repeat * 1e6)
        out[kind] = round(statistics.median(batches), 1)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; the results written to JSON."""
    bodies = {kind: fhir_r4_example(name).read_bytes() for kind, name in BODIES.items()}
    result: dict[str, Any] = {"params": common.run_params(args), "bodies": BODIES}
    samples: dict[str, dict[str, list[float]]] = {
        label: {kind: [] for kind in bodies} for label in ("off", "on")}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(common.work_dir(args.keep))
        db_url = stack.enter_context(
            common.bench_database(args.admin_url, args.db_name, args.keep))
        with common.bounded_run(args.max_seconds):
            result["machine"] = common.machine_info(db_url)
            servers = {
                label: common.start_ours(stack, db_url, args.workers, 2, 4, tmp,
                                         log_level=args.log_level, name=label,
                                         extra_env={"VALIDATE_INVARIANTS": value})
                for label, value in (("off", "false"), ("on", "true"))}
            clients = {label: stack.enter_context(httpx.Client(base_url=s.url, timeout=30))
                       for label, s in servers.items()}
            for label, expected in (("on", 422), ("off", 201)):
                answer = clients[label].post("/fhir/Patient", content=BROKEN,
                                             headers={"Content-Type": common.FHIR_JSON})
                if answer.status_code != expected:  # the setting must really switch
                    raise common.BenchError(f"{label} server answered {answer.status_code} "
                                            f"to a Patient breaking pat-1, not {expected}")
            for client in clients.values():
                for kind, body in bodies.items():
                    common.timed_creates(client, kind, body, args.warmup)
            for round_no in range(args.rounds):
                order = ("off", "on") if round_no % 2 == 0 else ("on", "off")
                for label in order:
                    for kind, body in bodies.items():
                        samples[label][kind] += common.timed_creates(clients[label], kind, body,
                                                         args.creates)
                log(f"round {round_no + 1}/{args.rounds} done")
    latency = {label: {kind: common.latency(s) for kind, s in per.items()}
               for label, per in samples.items()}
    latency["off"]["all"] = common.latency([x for s in samples["off"].values() for x in s])
    latency["on"]["all"] = common.latency([x for s in samples["on"].values() for x in s])
    result["latency_ms"] = latency
    result["extra_p50_percent"] = {
        kind: round((latency["on"][kind]["p50"] / latency["off"][kind]["p50"] - 1) * 100, 1)
        for kind in latency["on"]}
    result["stage_us"] = stage_cost(bodies)
    result["target_percent"] = args.target
    result["pass"] = all(v <= args.target for v in result["extra_p50_percent"].values())
    _print(result, args)
    return common.finish(args.name, result, {})


def _print(result: dict[str, Any], args: argparse.Namespace) -> None:
    lat, extra, us = result["latency_ms"], result["extra_p50_percent"], result["stage_us"]
    print(f"\ninvariants: {args.rounds} rounds x {args.creates} sequential creates per type "
          f"per server, {args.workers} worker(s) each")
    print(common.format_table(
        ["resource", "off p50 ms", "on p50 ms", "on/off", "off p95", "on p95", "stage us"],
        [[k, lat["off"][k]["p50"], lat["on"][k]["p50"],
          round(lat["on"][k]["p50"] / lat["off"][k]["p50"], 3), lat["off"][k]["p95"],
          lat["on"][k]["p95"], us.get(k, "")] for k in extra]))
    verdict = "PASS" if result["pass"] else "FAIL"
    print(f"extra p50 with invariants: {extra} (target <= +{args.target:g} %): {verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; the exit status."""
    return common.run_main("bench.invariants", _parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
