"""bench/common.py and the wrk Lua scripts, without a database or a FHIR server."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import common
from bench.create import check_rows, summarize

WRK_OUT = """Running 1s test @ http://127.0.0.1:1
  2 threads and 4 connections
BENCH_JSON {"requests":2000,"duration_us":2000000,"bytes":100,"errors":{"connect":0,\
"read":1,"write":0,"status":3,"timeout":2},"statuses":{"201":1990,"500":3},\
"latency_us":{"min":100,"mean":1500.5,"max":9000,"stdev":10.0,"p50":1000,"p90":2000,\
"p95":2500,"p99":4000,"p999":8000}}
"""


def test_parse_wrk_output() -> None:
    run = common.parse_wrk_output(WRK_OUT, "ours", 1, 0.5)
    assert run.requests == 2000
    assert run.seconds == 2.0
    assert run.rps == 1000.0
    assert run.latency_ms["p95"] == 2.5
    assert run.socket_errors == 3
    assert run.non_2xx == 3
    assert run.statuses == {"201": 1990, "500": 3}
    assert run.as_json()["socket_errors"] == 3


def test_parse_wrk_output_without_json_line() -> None:
    with pytest.raises(common.BenchError):
        common.parse_wrk_output("Running 1s test\n", "ours", 1, 0.0)


def _run(rps_requests: int, p95_us: int) -> common.WrkRun:
    out = WRK_OUT.replace('"requests":2000', f'"requests":{rps_requests}').replace(
        '"p95":2500', f'"p95":{p95_us}')
    return common.parse_wrk_output(out, "ours", 1, 0.0)


def test_combine_totals_and_medians() -> None:
    total = common.combine([_run(2000, 2000), _run(4000, 4000), _run(3000, 3000)])
    assert total["requests"] == 9000
    assert total["seconds"] == 6.0
    assert total["rps"] == 1500.0
    assert total["latency_ms"]["p95"] == 3.0
    assert total["socket_errors"] == 9


def test_check_rows_allows_in_flight_requests_only() -> None:
    run = common.parse_wrk_output(WRK_OUT, "ours", 1, 0.0)
    assert check_rows(run, 1990, 1990, 32)["ok"]
    assert check_rows(run, 2022, 2022, 32)["ok"]
    assert not check_rows(run, 2023, 2023, 32)["ok"]
    assert not check_rows(run, 1989, 1989, 32)["ok"]
    assert not check_rows(run, 1990, 1991, 32)["ok"]


def test_summarize_counts_only_201s() -> None:
    run = common.parse_wrk_output(WRK_OUT, "ours", 1, 0.0)
    rows = check_rows(run, 1990, 1990, 32)
    summary = summarize(run, rows, 500)
    assert summary["creates_per_s"] == 995.0
    assert summary["non_201"] == 3
    assert not summary["pass"]  # 500s and socket errors


def test_format_table_aligns_columns() -> None:
    text = common.format_table(["target", "req/s"], [["ours", 1234.5], ["baseline", 9.0]])
    lines = text.splitlines()
    assert lines[0].startswith("target  ")
    assert lines[2].endswith("1,234.5")
    assert lines[3].endswith("9.00")
    assert len({len(line) for line in lines}) == 1


def test_collapse_top(tmp_path: Path) -> None:
    raw = tmp_path / "w.txt"
    raw.write_text(
        "run (uvicorn/server.py:10);read (/work/main/fhir_server/api/instance.py:52) 3\n"
        "run (uvicorn/server.py:10);dumps (x/site-packages/orjson.py:1) 1\n")
    top = common.collapse_top([raw])
    assert top["samples"] == 4
    assert ("run (uvicorn/server.py)", 100.0) not in top["inclusive_pct"]
    assert ("read (fhir_server/api/instance.py)", 75.0) in top["inclusive_pct"]
    assert top["self_by_package_pct"][0] == ("fhir_server", 75.0)
    assert top["self_pct"][0] == ("read (fhir_server/api/instance.py)", 75.0)
    assert ("dumps (orjson.py)", 25.0) in top["self_pct"]


def test_database_url_switches_database() -> None:
    url = common.database_url("postgresql://postgres@127.0.0.1:5432/postgres", "bench_x")
    assert "dbname=bench_x" in url
    with pytest.raises(common.BenchError):
        common.create_database("postgresql://postgres@127.0.0.1:5432/postgres", "prod")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    paths: list[str] = []

    def _answer(self, status: int) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.paths.append(f"{self.command} {self.path}")
        body = b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(200 if self.path.endswith("/a") else 404)

    def do_POST(self) -> None:
        self._answer(201)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tiny_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


@needs_wrk
def test_read_lua_reads_ids_from_the_file(tiny_server: str, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("a\n")
    _Handler.paths = []
    run = common.run_wrk("t", 1, tiny_server, common.LUA / "read.lua", str(ids), 2, 1, 1)
    assert run.requests > 0
    assert run.non_2xx == 0
    assert set(_Handler.paths) == {"GET /fhir/Patient/a"}


@needs_wrk
def test_create_lua_posts_the_body_and_counts_statuses(tiny_server: str,
                                                       tmp_path: Path) -> None:
    body = tmp_path / "p.json"
    body.write_text('{"resourceType": "Patient"}')
    _Handler.paths = []
    run = common.run_wrk("t", 1, tiny_server, common.LUA / "create.lua", str(body), 2, 1, 1)
    assert run.requests > 0
    assert run.statuses["201"] >= run.requests
    assert set(_Handler.paths) == {"POST /fhir/Patient"}


def test_cpu_accounting() -> None:
    run = common.parse_wrk_output(WRK_OUT, "ours", 1, 0.0)
    assert run.cpu_us_per_request("server") == 0.0
    run.cpu_s = {"server": 1.0, "db": 0.5, "wrk": 0.1}
    run.machine_busy_s = 2.6
    assert run.cpu_us_per_request("server") == 500.0
    assert run.other_cores == 0.5  # (2.6 - 1.6) s over 2 s
    data = run.as_json()
    assert data["cores_busy"] == 0.8
    assert data["cpu_us_per_request"]["db"] == 250.0


def test_read_report_ratios() -> None:
    import argparse

    from bench.read import report

    ours = common.parse_wrk_output(WRK_OUT, "ours", 1, 0.0)
    base = common.parse_wrk_output(WRK_OUT.replace('"requests":2000', '"requests":4000'),
                                   "baseline", 1, 0.0)
    ours.cpu_s = {"server": 2.0}
    base.cpu_s = {"server": 2.0}
    summary = report([ours, base], argparse.Namespace(target=0.6))
    assert summary["ratio"] == 0.5
    assert summary["cpu_ratio"] == 0.5
    assert summary["median_round_ratio"] == 0.5
    assert not summary["pass"]
