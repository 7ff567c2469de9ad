"""One transaction Bundle of ``--entries`` plain Patients (a name, a gender, a birth
date, an identifier), posted once to a fresh server: seconds to commit and resources/s
(issue 11: 10,000 entries within 10 s). ``--audit`` turns the server's audit trail on
(its default), whose events are written in the transaction.

    .venv/bin/python -m bench.big_transaction --entries 10000
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

import httpx
import orjson

from bench.common import (
    bounded_run,
    format_table,
    log,
    machine_info,
    serve_on_fresh_database,
    write_results,
)

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_SECONDS = 10.0


def bundle(entries: int) -> bytes:
    """The transaction: ``entries`` POSTs of plain Patients."""
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Patient"}, "resource": {
            "resourceType": "Patient", "identifier": [{"system": "urn:bench", "value": str(n)}],
            "name": [{"family": f"Family{n % 997}", "given": ["Given"]}],
            "gender": "female", "birthDate": "1980-01-01"}}
        for n in range(entries)]})


def main(argv: list[str] | None = None) -> int:
    """Serve on a fresh database, post the Bundle (after a small warm-up), report."""
    parser = argparse.ArgumentParser(prog="bench.big_transaction", description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--audit", action="store_true")
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--name", default="big-transaction")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    body = bundle(args.entries)
    with bounded_run(1800), contextlib.ExitStack() as stack:
        db_url, server = serve_on_fresh_database(stack, args.admin_url, "bench_bigtx",
                                                 args.keep, args.workers, args.audit)
        headers = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}
        with httpx.Client(base_url=server.url, timeout=1200) as client:
            warm = client.post("/fhir", content=bundle(50), headers=headers)
            assert warm.status_code == 200, warm.text[:300]
            log(f"posting one transaction of {args.entries} Patients ({len(body):,} bytes)")
            started = time.perf_counter()
            answer = client.post("/fhir", content=body, headers=headers)
            seconds = time.perf_counter() - started
        if answer.status_code != 200:
            raise SystemExit(f"{answer.status_code}: {answer.text[:300]}")
        entries = len(orjson.loads(answer.content)["entry"])
        result: dict[str, Any] = {
            "entries": entries, "seconds": round(seconds, 2),
            "resources_per_second": round(entries / seconds),
            "target_seconds": TARGET_SECONDS,
            "pass": entries == args.entries and seconds <= TARGET_SECONDS}
        path = write_results(args.name, {"name": "big-transaction", "params": vars(args),
                                         "machine": machine_info(db_url), "result": result})
    print(format_table(list(result), [list(result.values())]))
    print(f"results: {path}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
