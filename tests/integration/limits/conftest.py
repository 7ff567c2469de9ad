"""Real server processes for the limits' integration tests: memory, starvation,
outage and connection limits (issue 11).

The servers run with their address space capped (``RLIMIT_AS``): a vector the server
fails to bound then ends in a MemoryError inside that process, not in the machine's
swap. Their peak memory is read from ``/proc/<pid>/status`` (``VmHWM``).
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import psutil

from tests.conftest import ROOT

#: the bound every test here asserts on a worker's peak resident memory
MAX_RSS_BYTES = 512 * 2 ** 20
#: the address space a test server may take (far above MAX_RSS_BYTES: the interpreter,
#: its libraries and thread stacks reserve much more than they touch)
ADDRESS_SPACE_BYTES = 3 * 2 ** 30


@dataclass
class Server:
    """A running server: its process and base URL."""

    proc: subprocess.Popen[bytes]
    root: str

    @property
    def base(self) -> str:
        return f"{self.root}/fhir"

    @property
    def port(self) -> int:
        return int(self.root.rsplit(":", 1)[1])

    def peak_rss(self) -> int:
        """The largest ``VmHWM`` (bytes) of the server process and its children."""
        pids = [self.proc.pid, *(c.pid for c in psutil.Process(self.proc.pid).children(
            recursive=True))]
        return max(vm_hwm(pid) for pid in pids)


def vm_hwm(pid: int) -> int:
    """A process's peak resident set size in bytes (``VmHWM`` of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))


@contextmanager
def capped_server(database_url: str, ready: bool = True, **env: str) -> Iterator[Server]:
    """``tests.conftest.running_server`` with the address space capped; ``ready=False``
    returns once the port answers at all (for servers whose database is meant to fail)."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    environ.update({"DATABASE_URL": database_url, "MIGRATE_ON_START": "true",
                    "LOG_LEVEL": "warning", "DB_POOL_MIN": "1", "DB_POOL_MAX": "4",
                    "AUTH_MODE": "off", **env})
    proc = subprocess.Popen(
        [sys.executable, "-m", "fhir_server.cli", "serve", "--host", "127.0.0.1", "--port",
         str(port), "--workers", "1"], env=environ, cwd=ROOT, preexec_fn=_cap_address_space)
    server = Server(proc, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"fhir-server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("fhir-server did not become ready within 60 s")
            try:
                answer = httpx.get(f"{server.root}/api/v1/ready", timeout=1)
                if answer.status_code == 200 or not ready:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
