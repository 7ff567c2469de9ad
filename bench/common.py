"""Shared pieces of the benchmarks: databases, server processes, the loader and wrk.

Everything a benchmark starts is registered on a ``contextlib.ExitStack`` so that it is
stopped (processes) or dropped (databases) however the run ends: normally, on an error,
on Ctrl-C, on SIGTERM or when the run's time limit expires.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from psycopg import sql

from tests.data import fhir_r4_example

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
RESULTS = BENCH / "results"
PYTHON = sys.executable
PATIENT_EXAMPLE = fhir_r4_example("Patient-example.json")
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FHIR_JSON = "application/fhir+json"


class BenchError(RuntimeError):
    """A benchmark cannot go on (a server did not start, wrk failed, data is wrong)."""


class TimeLimitExceeded(BenchError):
    """The run took longer than its ``--max-seconds``."""


def log(message: str) -> None:
    """Progress on stderr, timestamped, so that stdout holds only the results table."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the run's limits -------------------------------------------------------------------


@contextlib.contextmanager
def bounded_run(max_seconds: float) -> Iterator[None]:
    """Turn SIGTERM and SIGALRM (after ``max_seconds``) into exceptions, for cleanup."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise TimeLimitExceeded(f"the run took longer than {max_seconds:.0f} s")

    old_term = signal.signal(signal.SIGTERM, on_term)
    old_alarm = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max_seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_alarm)
        signal.signal(signal.SIGTERM, old_term)


# --- databases --------------------------------------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` pointing at database ``name`` instead."""
    return psycopg.conninfo.make_conninfo(admin_url, dbname=name)


def create_database(admin_url: str, name: str) -> str:
    """Create an empty database (dropping a leftover of the same name); its URL."""
    if not name.startswith("bench_"):
        raise BenchError(f"benchmark databases are named bench_*, not {name!r}")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop a benchmark database, closing its remaining connections."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def scalar(url: str, query: str, params: Sequence[Any] = ()) -> Any:
    """The first column of the first row of a query."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    return None if row is None else row[0]


def execute(url: str, statement: str) -> None:
    """Run one statement that returns nothing (VACUUM, ANALYZE) in autocommit mode."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.encode())


def postgres_version(url: str) -> str:
    """``server_version`` of the database server."""
    return str(scalar(url, "SHOW server_version"))


# --- processes --------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process started in its own session (process group) with its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    db_name: str = ""

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's output, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """Pids of the worker processes (children of the uvicorn supervisor)."""
        pids = []
        for pid in children(self.proc.pid):
            cmdline = _cmdline(pid)
            if "resource_tracker" not in cmdline:
                pids.append(pid)
        return pids

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the process group (the supervisor and its workers), SIGKILL if needed."""
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.1)
        if _group_alive(pgid):
            log(f"{self.name}: still running after {grace:.0f} s, killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    # guest time is already counted in user and nice.
    return (sum(values[:8]) - idle) / _CLOCK_TICKS


def wait_for_quiet(max_wait: float, threshold: float = 0.3, window: float = 3.0) -> float:
    """Wait (at most ``max_wait`` s) until the machine's busy cores over ``window`` s drop
    below ``threshold`` (call it while our own servers are idle); the last value seen."""
    deadline = time.monotonic() + max_wait
    while True:
        start = machine_busy_seconds()
        time.sleep(window)
        busy = (machine_busy_seconds() - start) / window
        if busy < threshold:
            return round(busy, 2)
        if time.monotonic() >= deadline:
            log(f"the machine is still busy ({busy:.2f} cores), measuring anyway")
            return round(busy, 2)
        log(f"the machine is busy ({busy:.2f} cores used by others), waiting")


def cpu_snapshot(server: Server) -> dict[str, dict[int, int]]:
    """CPU ticks (user + system) of the server's process group and of the PostgreSQL
    backends connected to its database, by pid."""
    snap: dict[str, dict[int, int]] = {"server": {}, "db": {}}
    db_marker = f" {server.db_name} " if server.db_name else None
    for pid, head, fields in _proc_stats():
        ticks = int(fields[11]) + int(fields[12])
        if int(fields[2]) == server.proc.pid:
            snap["server"][pid] = ticks
        elif db_marker and "(postgres)" in head and db_marker in _cmdline(pid):
            snap["db"][pid] = ticks
    return snap


def children(pid: int) -> list[int]:
    """Direct children of a process, from /proc."""
    return sorted(child for child, _, fields in _proc_stats()
                  if len(fields) > 1 and int(fields[1]) == pid)


def _proc_stats() -> Iterator[tuple[int, str, list[str]]]:
    """Each process's pid, ``/proc/PID/stat`` up to its command name (``pid (comm)``), and
    the fields after it; processes that vanish while being read are skipped."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        end = stat.rfind(")") + 1
        yield int(entry.name), stat[:end], stat[end + 1:].split()


def start_server(name: str, args: Sequence[str], env: dict[str, str], port: int,
                 log_dir: Path, cwd: Path = ROOT) -> Server:
    """Start ``args`` (run from ``cwd``, the repository root) in a new session, output to
    a log."""
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, **env}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(list(args), cwd=cwd, env=full_env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    db_name = str(psycopg.conninfo.conninfo_to_dict(env["DATABASE_URL"]).get("dbname", ""))
    return Server(name, proc, f"http://127.0.0.1:{port}", log_path, db_name)


def ensure_alive(server: Server) -> None:
    """Fail with the server's last output when its process has exited."""
    if server.proc.poll() is not None:
        hint = (" (status 0 without a stop from us: something else on the machine stopped it)"
                if server.proc.returncode == 0 else "")
        raise BenchError(f"{server.name} exited with {server.proc.returncode}{hint}:\n"
                         f"{server.log_tail()}")


def run_wrk_on(server: Server, round_no: int, script: Path, script_arg: str,
               connections: int, threads: int, seconds: float) -> WrkRun:
    """``run_wrk`` against ``server``, failing with its log if it died meanwhile."""
    before = cpu_snapshot(server)
    machine_before = machine_busy_seconds()
    try:
        run = run_wrk(server.name, round_no, server.url, script, script_arg, connections,
                      threads, seconds)
    except BenchError:
        ensure_alive(server)
        raise
    ensure_alive(server)
    after = cpu_snapshot(server)
    run.machine_busy_s = round(machine_busy_seconds() - machine_before, 3)
    for who in ("server", "db"):
        used = sum(t - before[who].get(pid, 0) for pid, t in after[who].items())
        run.cpu_s[who] = round(used / _CLOCK_TICKS, 3)
    if run.socket_errors > run.requests:
        raise BenchError(f"{server.name}: {run.socket_errors:,} socket errors for "
                         f"{run.requests:,} requests:\n{server.log_tail()}")
    return run


def wait_until(server: Server, path: str, expect: int, timeout: float) -> None:
    """Poll ``GET path`` until it answers ``expect``; fail if the process exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited with {server.proc.returncode}:\n"
                             f"{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + path, timeout=2) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
            time.sleep(0.25)
            continue
        if status == expect:
            return
        last = f"HTTP {status}"
        time.sleep(0.25)
    raise BenchError(f"{server.name} did not answer {expect} on {path} within {timeout:.0f} s"
                     f" (last: {last}):\n{server.log_tail()}")


def server_env(db_url: str, pool_min: int, pool_max: int,
               log_level: str = "warning") -> dict[str, str]:
    """Environment shared by our server and the baseline: same database, same pool.

    ``warning`` keeps our server's per-request access log (info) out of the measurement;
    pass ``info`` to measure with it.
    """
    return {
        "DATABASE_URL": db_url,
        "DB_POOL_MIN": str(pool_min),
        "DB_POOL_MAX": str(pool_max),
        "LOG_LEVEL": log_level,
        "PYTHONUNBUFFERED": "1",
    }


def start_ours(stack: contextlib.ExitStack, db_url: str, workers: int, pool_min: int,
               pool_max: int, log_dir: Path, timeout: float = 90.0,
               log_level: str = "warning", audit: bool = False, name: str = "ours",
               extra_env: dict[str, str] | None = None, checkout: Path = ROOT) -> Server:
    """Start ``fhir-server serve`` (migrating the database) and wait until it is ready;
    ``audit`` turns its audit trail on; ``extra_env``: more settings (REQUIRED_PROFILES...);
    ``checkout``: the code to serve (another worktree: its root comes first on sys.path)."""
    port = free_port()
    # The storage and serving path against the baseline (which has neither): tokens
    # and the audit trail are measured by bench/auth.py and bench/audit.py.
    env = server_env(db_url, pool_min, pool_max, log_level) | {
        "MIGRATE_ON_START": "true", "AUTH_MODE": "off", "AUDIT": str(audit).lower()
    } | (extra_env or {})
    server = start_server(
        name,
        # = python -m fhir_server.cli serve ... (see bench/serve_ours.py for why)
        [PYTHON, "-m", "bench.serve_ours", "serve", "--host", "127.0.0.1", "--port",
         str(port), "--workers", str(workers)],
        env, port, log_dir, checkout)
    stack.callback(_stop_logged, server)
    log(f"{name}: pid {server.proc.pid} on {server.url}, waiting for /api/v1/ready")
    wait_until(server, "/api/v1/ready", 200, timeout)
    return server


def start_baseline(stack: contextlib.ExitStack, db_url: str, workers: int, pool_min: int,
                   pool_max: int, log_dir: Path, timeout: float = 60.0,
                   log_level: str = "warning") -> Server:
    """Start ``bench/baseline.py`` and wait until it answers (404 for a missing id)."""
    port = free_port()
    server = start_server(
        "baseline",
        [PYTHON, "-m", "bench.baseline", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        server_env(db_url, pool_min, pool_max, log_level), port, log_dir)
    stack.callback(_stop_logged, server)
    log(f"baseline: pid {server.proc.pid} on {server.url}, waiting for it to answer")
    wait_until(server, "/fhir/Patient/bench-no-such-id", 404, timeout)
    return server


def _stop_logged(server: Server) -> None:
    log(f"{server.name}: stopping pid {server.proc.pid}")
    server.stop()


@contextlib.contextmanager
def bench_database(admin_url: str, name: str, keep: bool) -> Iterator[str]:
    """A fresh database for the run, dropped at the end unless ``keep``."""
    url = create_database(admin_url, name)
    log(f"database {name} created")
    try:
        yield url
    finally:
        if keep:
            log(f"database {name} kept (--keep): {url}")
        else:
            drop_database(admin_url, name)
            log(f"database {name} dropped")


@contextlib.contextmanager
def work_dir(keep: bool) -> Iterator[Path]:
    """A temporary directory for logs and id files, removed unless ``keep`` or failure."""
    path = Path(tempfile.mkdtemp(prefix="fhir-bench-"))
    failed = False
    try:
        yield path
    except BaseException:
        failed = True
        raise
    finally:
        if keep or failed:
            log(f"server logs and id file kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


# --- one benchmark run: options, set-up, results ----------------------------------------


def serve_on_fresh_database(stack: contextlib.ExitStack, admin_url: str, name: str,
                            keep: bool, workers: int, audit: bool = False
                            ) -> tuple[str, Server]:
    """A fresh database (dropped at the end unless ``keep``), a folder for the logs and
    our server migrating it (2 to 10 connections per worker), all stopped by ``stack``:
    (database URL, server)."""
    db_url = stack.enter_context(bench_database(admin_url, name, keep))
    logs = stack.enter_context(work_dir(keep))
    return db_url, start_ours(stack, db_url, workers, 2, 10, logs, audit=audit)


def add_load_args(p: argparse.ArgumentParser, duration_help: str, each: str = "") -> None:
    """The wrk load and server size options (``each``: " of each" where two servers run)."""
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    p.add_argument("--workers", type=int, default=2, help=f"worker processes{each} (2)")
    p.add_argument("--pool-min", type=int, default=2, help=f"DB_POOL_MIN{each} (2)")
    p.add_argument("--pool-max", type=int, default=10, help=f"DB_POOL_MAX{each} (10)")
    p.add_argument("--duration", type=float, default=20, help=duration_help)
    p.add_argument("--warmup", type=float, default=5, help=f"warm-up seconds{each} (5)")


def add_run_args(p: argparse.ArgumentParser, bench: str, max_seconds: float,
                 keep_help: str) -> None:
    """The options every wrk benchmark of our server takes after its own (logging, quiet
    wait, profiling, the database, results file and time limit), in this order."""
    p.add_argument("--log-level", default="warning",
                   help="LOG_LEVEL of the servers (warning; info turns our access log on)")
    p.add_argument("--quiet-wait", type=float, default=0, metavar="SECONDS",
                   help="before each measured run, wait up to SECONDS for other processes "
                        "to leave the CPUs alone (0: off)")
    p.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                   help="afterwards, py-spy our workers during a run of SECONDS (0: off)")
    p.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL",
                                                         DEFAULT_ADMIN_URL),
                   help="PostgreSQL URL used to create and drop the database "
                        "(BENCH_ADMIN_URL, default %(default)s)")
    p.add_argument("--db-name", default=f"bench_{bench}_{os.getpid()}",
                   help="database to create (must start with bench_)")
    p.add_argument("--keep", action="store_true", help=keep_help)
    p.add_argument("--name", default=bench, help="results file bench/results/NAME.json")
    p.add_argument("--max-seconds", type=float, default=max_seconds,
                   help=f"abort (and clean up) after this long ({max_seconds:g})")


def run_params(args: argparse.Namespace) -> dict[str, Any]:
    """The options of a run as recorded in its results (paths as text; the admin URL is
    left out, it may hold a password)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if k != "admin_url"}


@dataclass
class RunSetup:
    """What a benchmark run measures against, from ``ours_on_fresh_database``."""

    stack: contextlib.ExitStack
    tmp: Path
    db_url: str
    ours: Server
    machine: dict[str, Any]


@contextlib.contextmanager
def ours_on_fresh_database(args: argparse.Namespace) -> Iterator[RunSetup]:
    """A fresh database and our server migrating it, within ``--max-seconds``.

    Whatever the body starts on ``setup.stack`` is stopped, and the database dropped
    (unless ``--keep``), however the run ends.
    """
    wrk = wrk_version()  # fail before creating anything
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(work_dir(args.keep))
        db_url = stack.enter_context(bench_database(args.admin_url, args.db_name, args.keep))
        # Inside: the time limit; outside it, the stack stops and drops everything.
        with bounded_run(args.max_seconds):
            machine = machine_info(db_url) | {"wrk": wrk}
            ours = start_ours(stack, db_url, args.workers, args.pool_min, args.pool_max,
                              tmp, log_level=args.log_level)
            yield RunSetup(stack, tmp, db_url, ours, machine)


def wrk_command_line(script: Path, script_arg: str, args: argparse.Namespace) -> str:
    """The measured runs' wrk command, for the results (the port and file placeholders)."""
    return " ".join(wrk_command("http://127.0.0.1:PORT", script.relative_to(ROOT),
                                script_arg, args.connections, args.threads, args.duration))


def finish(name: str, result: dict[str, Any], profiles: dict[str, Any]) -> dict[str, Any]:
    """After the table: each profile under its label, then ``write_results`` and where
    it wrote them; the results."""
    for label, profile in profiles.items():
        print(f"\n{label}: " + format_profile(profile))
    path = write_results(name, result)
    print(f"results: {path.relative_to(ROOT)}")
    return result


def run_main(prog: str, parser: argparse.ArgumentParser,
             run: Callable[[argparse.Namespace], dict[str, Any]],
             argv: Sequence[str] | None) -> int:
    """A benchmark's command line: 2 when it could not run, 1 when ``--check`` is given
    and the result did not pass, else 0."""
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        result = run(args)
    except BenchError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    log(f"done in {time.monotonic() - started:.0f} s")
    return 1 if args.check and not result["pass"] else 0


# --- loading data -----------------------------------------------------------------------


@dataclass
class LoadResult:
    """How loading went: ids created, time taken, failures."""

    ids: list[str]
    seconds: float
    failures: int
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Creates per second during the load (Python client, not the benchmark)."""
        return len(self.ids) / self.seconds if self.seconds else 0.0


async def _post_loop(host: str, port: int, request: bytes, take: Callable[[], bool],
                     done: Callable[[int, bytes], None], request_timeout: float) -> None:
    """One keep-alive connection posting ``request`` while ``take()`` grants another."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while take():
            writer.write(request)
            async with asyncio.timeout(request_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
                status, length = _parse_head(head)
                body = await reader.readexactly(length)
            done(status, body)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, int]:
    """Status and Content-Length of an HTTP/1.1 response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return status, int(value)
    raise BenchError(f"no Content-Length in the response: {lines[0]}")


async def _load(base_url: str, body: bytes, count: int, concurrency: int,
                request_timeout: float) -> LoadResult:
    url = urllib.parse.urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    request = (f"POST /fhir/Patient HTTP/1.1\r\nHost: {url.netloc}\r\n"
               f"Content-Type: {FHIR_JSON}\r\nAccept: {FHIR_JSON}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    ids: list[str] = []
    statuses: dict[str, int] = {}
    remaining = count
    failures = 0

    def take() -> bool:
        nonlocal remaining
        if remaining <= 0:
            return False
        remaining -= 1
        return True

    def done(status: int, answer: bytes) -> None:
        nonlocal remaining, failures
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status != 201:
            failures += 1
            remaining += 1  # try again: exactly ``count`` resources are wanted
            if failures > 10:
                raise BenchError(f"loading failed: HTTP {status}: {answer[:500]!r}")
            return
        ids.append(json.loads(answer)["id"])

    start = time.perf_counter()
    await asyncio.gather(*(_post_loop(host, port, request, take, done, request_timeout)
                           for _ in range(concurrency)))
    return LoadResult(ids, time.perf_counter() - start, failures, statuses)


def load_patients(base_url: str, body: bytes, count: int, concurrency: int = 32,
                  timeout: float = 30.0) -> LoadResult:
    """POST ``body`` ``count`` times through the API on ``concurrency`` connections.

    A minimal asyncio HTTP/1.1 keep-alive client: httpx managed only ~150 creates/s
    here, which made loading 10,000 Patients take a minute.
    """
    try:
        return asyncio.run(_load(base_url, body, count, concurrency, timeout))
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        raise BenchError(f"loading failed: {type(exc).__name__}: {exc}") from exc


# --- wrk --------------------------------------------------------------------------------

_JSON_MARK = "BENCH_JSON "


@dataclass
class WrkRun:
    """One wrk run: throughput, latency percentiles (ms) and errors."""

    label: str
    round: int
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[str, float]
    errors: dict[str, int]
    statuses: dict[str, int]
    load_before: float
    #: CPU seconds used during the run by the server's processes, by the PostgreSQL
    #: backends of the benchmark database, and by wrk (0 when not measured).
    cpu_s: dict[str, float] = field(default_factory=dict)
    #: CPU seconds all processes of the machine used during the run (0: not measured).
    machine_busy_s: float = 0.0

    @property
    def other_cores(self) -> float:
        """Cores busy with anything but the server, its database backends and wrk: other
        users of the machine, PostgreSQL's background processes, the kernel."""
        if not self.machine_busy_s or not self.seconds:
            return 0.0
        return round(max(0.0, self.machine_busy_s - sum(self.cpu_s.values())) / self.seconds,
                     2)

    def cpu_us_per_request(self, who: str) -> float:
        """CPU microseconds per request of ``server``, ``db`` or ``wrk``."""
        if not self.requests or who not in self.cpu_s:
            return 0.0
        return round(1e6 * self.cpu_s[who] / self.requests, 1)

    @property
    def socket_errors(self) -> int:
        """Connect, read, write and timeout errors."""
        return sum(v for k, v in self.errors.items() if k != "status")

    @property
    def non_2xx(self) -> int:
        """Answers with a status >= 400 (what wrk counts as status errors)."""
        return self.errors.get("status", 0)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict, with derived fields."""
        return asdict(self) | {
            "socket_errors": self.socket_errors,
            "non_2xx": self.non_2xx,
            "cpu_us_per_request": {k: self.cpu_us_per_request(k) for k in self.cpu_s},
            "cores_busy": round(sum(self.cpu_s.values()) / self.seconds, 2)
            if self.seconds else 0.0,
            "other_cores": self.other_cores,
        }


def parse_wrk_output(stdout: str, label: str, round_no: int, load_before: float) -> WrkRun:
    """The ``BENCH_JSON`` line that the Lua scripts' ``done()`` prints, as a WrkRun."""
    for line in stdout.splitlines():
        if line.startswith(_JSON_MARK):
            data = json.loads(line[len(_JSON_MARK):])
            break
    else:
        raise BenchError(f"no {_JSON_MARK.strip()} line in wrk's output:\n{stdout}")
    seconds = data["duration_us"] / 1e6
    latency = {k: round(v / 1000, 3) for k, v in data["latency_us"].items()}
    return WrkRun(
        label=label,
        round=round_no,
        requests=int(data["requests"]),
        seconds=round(seconds, 6),
        rps=round(data["requests"] / seconds, 1) if seconds else 0.0,
        latency_ms=latency,
        errors={k: int(v) for k, v in data["errors"].items()},
        statuses={str(k): int(v) for k, v in data.get("statuses", {}).items()},
        load_before=load_before,
    )


def wrk_command(url: str, script: Path, script_arg: str, connections: int, threads: int,
                seconds: float, timeout_s: float = 5.0) -> list[str]:
    """The wrk command line of one run."""
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s:g}s", "--latency", "-s", str(script), url, "--",
            script_arg]


def run_wrk(label: str, round_no: int, url: str, script: Path, script_arg: str,
            connections: int, threads: int, seconds: float) -> WrkRun:
    """Run wrk once and parse its results; a hung wrk is killed after ``seconds + 30``."""
    cmd = wrk_command(url, script, script_arg, connections, threads, seconds)
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30,
                          check=False, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {' '.join(cmd)}\n"
                         f"{proc.stdout}\n{proc.stderr}")
    run = parse_wrk_output(proc.stdout, label, round_no, round(load_before, 2))
    run.cpu_s["wrk"] = round(after.ru_utime + after.ru_stime
                             - before.ru_utime - before.ru_stime, 3)
    return run


def wrk_version() -> str:
    """``wrk -v``'s first line (it exits 1 after printing it)."""
    exe = shutil.which("wrk")
    if exe is None:
        raise BenchError("wrk is not installed: apt-get install wrk")
    proc = subprocess.run([exe, "-v"], capture_output=True, text=True, check=False,
                          timeout=10)
    return (proc.stdout or proc.stderr).splitlines()[0].strip()


def combine(runs: Sequence[WrkRun]) -> dict[str, Any]:
    """Several rounds of one target: total throughput, median of each percentile."""
    requests = sum(r.requests for r in runs)
    seconds = sum(r.seconds for r in runs)
    keys = runs[0].latency_ms.keys()
    return {
        "rounds": len(runs),
        "requests": requests,
        "seconds": round(seconds, 3),
        "rps": round(requests / seconds, 1) if seconds else 0.0,
        "latency_ms": {k: round(statistics.median(r.latency_ms[k] for r in runs), 3)
                       for k in keys},
        "socket_errors": sum(r.socket_errors for r in runs),
        "non_2xx": sum(r.non_2xx for r in runs),
        "cpu_us_per_request": {
            who: round(1e6 * sum(r.cpu_s.get(who, 0.0) for r in runs) / requests, 1)
            for who in runs[0].cpu_s} if requests else {},
        "other_cores_max": max(r.other_cores for r in runs),
    }


# --- py-spy -----------------------------------------------------------------------------


def start_profilers(server: Server, seconds: float, out_dir: Path,
                    name: str) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """``py-spy record`` (collapsed stacks) on every worker of ``server``, in background."""
    exe = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(exe).exists():
        raise BenchError("py-spy is not installed: .venv/bin/pip install py-spy")
    started = []
    for pid in server.worker_pids():
        out = out_dir / f"{name}-worker-{pid}.txt"
        proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
             "--rate", "250", "--format", "raw", "--nonblocking", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append((proc, out))
    return started


#: Frames every sample of a uvicorn worker has (process start, event loop): not shown.
_BOILERPLATE = ("<string>", "multiprocessing/", "asyncio/runners.py", "uvicorn/server.py",
                "uvicorn/_compat.py", "uvicorn/_subprocess.py", "uvicorn/supervisors/")


def collapse_top(paths: Sequence[Path], limit: int = 25) -> dict[str, Any]:
    """Sample shares from py-spy ``raw`` (collapsed stack) files.

    ``self_pct``: frames at the top of the stack; ``self_by_package_pct``: the same summed
    by package (first path component, e.g. ``fastapi``, ``psycopg``, ``fhir_server``);
    ``inclusive_pct``: frames anywhere in the stack. Coroutines resumed by the event loop
    (uvloop, in C) are sampled without their callers, so inclusive shares of the
    middleware/routing layers are understated; self shares are exact.
    """
    total = 0
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    packages: dict[str, int] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_short_frame(f) for f in stack.split(";")]
            total += count
            for frame in set(frames):
                if not any(b in frame for b in _BOILERPLATE):
                    inclusive[frame] = inclusive.get(frame, 0) + count
            own[frames[-1]] = own.get(frames[-1], 0) + count
            package = _package(frames[-1])
            packages[package] = packages.get(package, 0) + count

    def top(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
        return [(frame, round(100 * n / total, 1)) for frame, n in ranked]

    return {"samples": total, "self_by_package_pct": top(packages),
            "self_pct": top(own), "inclusive_pct": top(inclusive)}


def _package(frame: str) -> str:
    """``fastapi`` of ``f (fastapi/routing.py)``; the file name for the standard library."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    file = match["file"]
    return file.split("/", 1)[0] if "/" in file else file


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short_frame(frame: str) -> str:
    """``func (path/to/file.py:12)`` as ``func (file.py)``: lines would split counts."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = match["file"]
    for marker in ("site-packages/", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match['func']} ({file})"


# --- reporting --------------------------------------------------------------------------


def machine_info(db_url: str) -> dict[str, Any]:
    """What the numbers depend on: CPUs, load, versions."""
    return {
        "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "postgresql": postgres_version(db_url),
        "wrk": wrk_version(),
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json``; its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"name": name, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **data}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, columns left-aligned for text and right-aligned for numbers."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]),
                      *(line(r) for r in cells)])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def profile_run(server: Server, script: Path, script_arg: str, connections: int,
                threads: int, seconds: float, name: str) -> dict[str, Any]:
    """Load ``server`` with wrk while py-spy samples its workers; the hottest frames.

    The collapsed stacks are kept in ``bench/results/profile/`` (feed them to
    ``flamegraph.pl`` or speedscope). Sampling slows the workers down a little, so the
    throughput of this run is not comparable with the measured rounds.
    """
    out_dir = RESULTS / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(f"{name}-worker-*.txt"):
        old.unlink()
    profilers = start_profilers(server, seconds, out_dir, name)
    time.sleep(1.0)  # let py-spy attach before the load starts
    run = run_wrk_on(server, 0, script, script_arg, connections, threads, seconds)
    paths = []
    for proc, path in profilers:
        try:
            _, err = proc.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0 and not path.exists():
            raise BenchError(f"py-spy failed: {err.decode(errors='replace')[-2000:]}")
        paths.append(path)
    summary = collapse_top(paths)
    return {"wrk": run.as_json(), "files": [str(p.relative_to(ROOT)) for p in paths],
            **summary}


def format_profile(profile: dict[str, Any], limit: int = 15) -> str:
    """The hottest frames of a profile (inclusive and self), as text."""
    out = [f"py-spy: {profile['samples']:,} samples over the workers "
           f"(files: {', '.join(profile['files'])})"]
    for key, title in (("self_by_package_pct", "self time by package"),
                       ("self_pct", "self time"),
                       ("inclusive_pct", "inclusive (understated for async frames)")):
        out.append(f"{title}:")
        out += [f"  {pct:5.1f}%  {frame}" for frame, pct in profile[key][:limit]]
    return "\n".join(out)

def timed_creates(client: Any, kind: str, body: bytes, count: int) -> list[float]:
    """Milliseconds of ``count`` sequential creates of ``kind`` (an httpx client);
    every one must be a 201."""
    out = []
    for _ in range(count):
        started = time.perf_counter()
        answer = client.post(f"/fhir/{kind}", content=body,
                             headers={"Content-Type": FHIR_JSON, "Prefer": "return=minimal"})
        out.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 201:
            raise BenchError(f"create answered {answer.status_code}: {answer.text}")
    return out


def latency(samples: list[float]) -> dict[str, float]:
    """p50, p95 and mean of millisecond samples, and their number."""
    ordered = sorted(samples)
    return {"p50": round(statistics.median(ordered), 3),
            "p95": round(ordered[int(len(ordered) * 0.95) - 1], 3),
            "mean": round(statistics.fmean(ordered), 3), "n": len(ordered)}
