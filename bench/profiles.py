"""Profile validation cost: create latency with a required profile against without.

One run: a fresh database and two servers on it, ``plain`` (no profile required) and
``profiled`` (``REQUIRED_PROFILES=Patient=<hospital-patient>``), both with the shipped
profiles loaded. One client posts the official Patient example (which conforms) to
each, one request at a time, in alternating rounds (plain, profiled, profiled, plain,
...) so that the machine's noise falls on both alike; the latencies of all rounds are
pooled per server. Then the validator alone, in this process: microseconds per
``validate`` of the same body with and without the profile required.

    .venv/bin/python -m bench.profiles          # ~1 minute

Results: a table on stdout, JSON in ``bench/results/<name>.json``. Exit status 1 with
``--check`` when the profiled p50 exceeds the plain one by more than ``--target`` %.
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
from fhir_server.validation import Validator
from fhir_server.validation.profiles import ProfileSet

PROFILE = "http://fhir-server.dev/StructureDefinition/hospital-patient"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.profiles",
                                description=__doc__.split("\n", 1)[0])
    p.add_argument("--creates", type=int, default=50, help="creates per round (50)")
    p.add_argument("--rounds", type=int, default=30, help="rounds per server (30)")
    p.add_argument("--warmup", type=int, default=100, help="warm-up creates each (100)")
    p.add_argument("--target", type=float, default=20,
                   help="most extra p50 latency with the profile, in %% (20)")
    p.add_argument("--check", action="store_true", help="exit 1 when above --target")
    p.add_argument("--workers", type=int, default=1, help="worker processes each (1)")
    common.add_run_args(p, "profiles", max_seconds=600, keep_help="keep the database")
    return p


def validator_cost(body: dict[str, Any], repeat: int = 3000) -> dict[str, float]:
    """Microseconds per ``Validator.validate`` of ``body``, median of 5 batches."""
    definitions = Definitions.load()
    folder = data_dir("profiles")
    out = {}
    for label, required in (("plain", {}), ("profiled", {"Patient": (PROFILE,)})):
        validator = Validator.load(folder, definitions=definitions, profiles=ProfileSet.load(
            definitions, folder, required=required))
        batches = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(repeat):
                validator.validate(body)
            batches.append((time.perf_counter() - started) / repeat * 1e6)
        out[label] = round(statistics.median(batches), 1)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; the results written to JSON."""
    body = common.PATIENT_EXAMPLE.read_bytes()
    result: dict[str, Any] = {"params": common.run_params(args)}
    samples: dict[str, list[float]] = {"plain": [], "profiled": []}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(common.work_dir(args.keep))
        db_url = stack.enter_context(
            common.bench_database(args.admin_url, args.db_name, args.keep))
        with common.bounded_run(args.max_seconds):
            result["machine"] = common.machine_info(db_url)
            servers = {
                label: common.start_ours(stack, db_url, args.workers, 2, 4, tmp,
                                         log_level=args.log_level, name=label,
                                         extra_env=env)
                for label, env in (("plain", {}),
                                   ("profiled", {"REQUIRED_PROFILES": f"Patient={PROFILE}"}))}
            clients = {label: stack.enter_context(httpx.Client(base_url=s.url, timeout=30))
                       for label, s in servers.items()}
            refused = clients["profiled"].post(
                "/fhir/Patient", content=b'{"resourceType":"Patient"}',
                headers={"Content-Type": common.FHIR_JSON})
            if refused.status_code != 422:  # the profile must really be required
                raise common.BenchError(f"profiled server answered {refused.status_code} "
                                        "to a Patient without identifier, not 422")
            for client in clients.values():
                common.timed_creates(client, "Patient", body, args.warmup)
            for round_no in range(args.rounds):
                order = ("plain", "profiled") if round_no % 2 == 0 else ("profiled", "plain")
                for label in order:
                    samples[label] += common.timed_creates(clients[label], "Patient", body,
                                                           args.creates)
                log(f"round {round_no + 1}/{args.rounds} done")
    result["latency_ms"] = {label: common.latency(s) for label, s in samples.items()}
    plain, profiled = (result["latency_ms"][k]["p50"] for k in ("plain", "profiled"))
    result["extra_p50_percent"] = round((profiled / plain - 1) * 100, 1)
    result["validate_us"] = validator_cost(orjson.loads(body))
    result["target_percent"] = args.target
    result["pass"] = result["extra_p50_percent"] <= args.target
    _print(result, args)
    return common.finish(args.name, result, {})


def _print(result: dict[str, Any], args: argparse.Namespace) -> None:
    lat, us = result["latency_ms"], result["validate_us"]
    print(f"\nprofiles: POST Patient-example.json, {args.rounds} rounds x {args.creates} "
          f"sequential creates per server, {args.workers} worker(s) each")
    print(common.format_table(
        ["server", "p50 ms", "p95 ms", "mean ms", "n", "validate us"],
        [[k, lat[k]["p50"], lat[k]["p95"], lat[k]["mean"], lat[k]["n"], us[k]]
         for k in ("plain", "profiled")]))
    verdict = "PASS" if result["pass"] else "FAIL"
    print(f"profiled p50: {result['extra_p50_percent']:+.1f} % "
          f"(target <= +{args.target:g} %): {verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; the exit status."""
    return common.run_main("bench.profiles", _parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
