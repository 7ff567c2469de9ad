"""Binary download benchmark: ``GET /fhir/Binary/{id}`` of a 50 MB PDF from local storage.

One run: a fresh database, our server (one worker, ``DATA_DIR`` in a temporary folder so
the content is on the local disk), one raw upload of ``--megabytes`` of random bytes
(``Content-Type: application/pdf``), then ``--rounds`` downloads read to the end by a
plain HTTP client on one connection; MB/s of each (10^6 bytes per MB), the median
reported. The worker's peak RSS (VmHWM) before the upload and after the downloads says
whether the content went through memory. Target: >= 200 MB/s.

    .venv/bin/python -m bench.binary                   # 50 MB, 5 downloads
    .venv/bin/python -m bench.binary --rounds 2        # quicker

Results: a table on stdout, JSON in ``bench/results/<name>.json``. Exit status 1 with
``--check`` when the median is below ``--target``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import common
from bench.common import BenchError, log

MB = 1_000_000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.binary",
                                description=__doc__.split("\n", 1)[0])
    p.add_argument("--megabytes", type=int, default=50, help="size of the PDF (50)")
    p.add_argument("--rounds", type=int, default=5, help="downloads measured (5)")
    p.add_argument("--target", type=float, default=200.0, help="wanted MB/s (200)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the median is below --target")
    p.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL",
                                                         common.DEFAULT_ADMIN_URL),
                   help="PostgreSQL URL used to create and drop the database "
                        "(BENCH_ADMIN_URL, default %(default)s)")
    p.add_argument("--db-name", default=f"bench_binary_{os.getpid()}",
                   help="database to create (must start with bench_)")
    p.add_argument("--keep", action="store_true", help="keep the database and logs")
    p.add_argument("--name", default="binary", help="results file bench/results/NAME.json")
    p.add_argument("--max-seconds", type=float, default=600,
                   help="abort (and clean up) after this long (600)")
    return p


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident set (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for pid {pid}")


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while piece := f.read(1024 * 1024):
            yield piece


def start(stack: contextlib.ExitStack, db_url: str, tmp: Path) -> common.Server:
    """Our server, one worker, its blobs under ``tmp``."""
    port = common.free_port()
    env = common.server_env(db_url, 1, 4) | {
        "MIGRATE_ON_START": "true", "AUTH_MODE": "off", "AUDIT": "false",
        "DATA_DIR": str(tmp / "data")}
    server = common.start_server(
        "ours", [common.PYTHON, "-m", "bench.serve_ours", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", "1"], env, port, tmp)
    stack.callback(server.stop)
    common.wait_until(server, "/api/v1/ready", 200, 90)
    return server


def download(client: httpx.Client, id: str, size: int) -> tuple[float, str]:
    """Seconds of one full download, and the SHA-256 of what arrived."""
    digest = hashlib.sha256()
    received = 0
    started = time.perf_counter()
    with client.stream("GET", f"/fhir/Binary/{id}", headers={"Accept": "application/pdf"}
                       ) as answer:
        if answer.status_code != 200:
            raise BenchError(f"download answered {answer.status_code}")
        for piece in answer.iter_raw(1024 * 1024):
            received += len(piece)
            digest.update(piece)
    seconds = time.perf_counter() - started
    if received != size:
        raise BenchError(f"downloaded {received} bytes of {size}")
    return seconds, digest.hexdigest()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One benchmark run; the results (also written to bench/results)."""
    size = args.megabytes * MB
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(common.work_dir(args.keep))
        db_url = stack.enter_context(common.bench_database(args.admin_url, args.db_name,
                                                           args.keep))
        with common.bounded_run(args.max_seconds):
            source = tmp / "document.pdf"
            expected = hashlib.sha256()
            with source.open("wb") as f:
                for _ in range(args.megabytes):
                    piece = os.urandom(MB)
                    expected.update(piece)
                    f.write(piece)
            server = start(stack, db_url, tmp)
            with httpx.Client(base_url=server.url, timeout=120) as client:
                before = peak_rss_mib(server.proc.pid)
                started = time.perf_counter()
                answer = client.post("/fhir/Binary", content=_file_chunks(source), headers={
                    "Content-Type": "application/pdf", "Content-Length": str(size)})
                upload_seconds = time.perf_counter() - started
                if answer.status_code != 201:
                    raise BenchError(f"upload answered {answer.status_code}: {answer.text}")
                id = answer.headers["location"].split("/Binary/")[1].split("/")[0]
                download(client, id, size)  # warm-up (page cache)
                rates = []
                for round_no in range(1, args.rounds + 1):
                    seconds, digest = download(client, id, size)
                    if digest != expected.hexdigest():
                        raise BenchError("the download differs from the upload")
                    rates.append(size / MB / seconds)
                    log(f"round {round_no}/{args.rounds}: {rates[-1]:.0f} MB/s")
                after = peak_rss_mib(server.proc.pid)
    median = statistics.median(rates)
    result = {"params": {k: v for k, v in vars(args).items() if k != "admin_url"},
              "megabytes": args.megabytes, "upload_mb_s": round(size / MB / upload_seconds, 1),
              "download_mb_s": [round(r, 1) for r in rates],
              "median_mb_s": round(median, 1), "target_mb_s": args.target,
              "peak_rss_mib": {"before": round(before, 1), "after": round(after, 1)},
              "pass": median >= args.target}
    print(f"{'upload':<22}{result['upload_mb_s']:>10} MB/s")
    print(f"{'download (median)':<22}{result['median_mb_s']:>10} MB/s  "
          f"(target {args.target:g}: {'pass' if result['pass'] else 'FAIL'})")
    print(f"{'worker peak RSS':<22}{before:>10.1f} MiB before, {after:.1f} MiB after")
    path = common.write_results(args.name, result)
    print(f"results: {path.relative_to(common.ROOT)}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    return common.run_main("bench.binary", _parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
