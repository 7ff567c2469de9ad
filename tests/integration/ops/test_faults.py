"""Fault scenarios against real processes: PostgreSQL restarts, SIGKILL, SIGTERM.

Each scenario runs its own server on a database of a private PostgreSQL cluster
(``cluster.py``), never on the shared one, since it stops that cluster or kills servers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.ops.cluster import Cluster, stop_server, wait_until

FHIR_JSON = {"Content-Type": "application/fhir+json"}
TAG_SYSTEM = "urn:fhir-server:ops-test"
Spawn = Callable[..., tuple[subprocess.Popen[bytes], str]]


@dataclass
class Outcome:
    """One request of a load: when it ran, what it was, how it ended."""

    started: float
    ended: float
    op: str
    status: int | None = None
    body: bytes = b""
    error: str | None = None

    def is_outcome_503(self) -> bool:
        if self.status != 503:
            return False
        try:
            doc = json.loads(self.body)
        except ValueError:
            return False
        return doc.get("resourceType") == "OperationOutcome" and bool(doc.get("issue"))


class Load:
    """Threads sending creates, reads, searches and small transactions until stopped."""

    def __init__(self, base: str, threads: int = 4) -> None:
        self.base = base
        self.outcomes: list[Outcome] = []
        self.created: list[tuple[str, str]] = []  # (path, versionId) acknowledged
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _run(self, n: int) -> None:
        tag = uuid.uuid4().hex
        i = 0
        with httpx.Client(base_url=f"{self.base}/fhir", timeout=30) as client:
            while not self._stop.is_set():
                i += 1
                kind = ("create", "read", "transaction", "search")[i % 4]
                with self._lock:
                    known = self.created[-1][0] if self.created else None
                if kind == "create" or known is None:
                    self._send(client, "create", "POST", "Patient", _patient(f"{tag}-{i}"))
                elif kind == "read":
                    self._send(client, "read", "GET", known)
                elif kind == "transaction":
                    self._send(client, "transaction", "POST", "",
                               _transaction(f"{tag}-t{i}", 3))
                else:
                    self._send(client, "search", "GET",
                               f"Patient?identifier={TAG_SYSTEM}|{tag}-{i - 3}")
                time.sleep(0.02)

    def _send(self, client: httpx.Client, op: str, method: str, url: str,
              body: dict[str, Any] | None = None) -> None:
        started = time.monotonic()
        outcome = Outcome(started, started, op)
        try:
            content = None if body is None else json.dumps(body).encode()
            r = client.request(method, url, content=content,
                               headers=FHIR_JSON if body is not None else None)
            outcome.status, outcome.body = r.status_code, r.content
            created: list[tuple[str, str]] = []
            if r.status_code == 201:
                doc = r.json()
                created.append((f"{doc['resourceType']}/{doc['id']}", doc["meta"]["versionId"]))
            elif op == "transaction" and r.status_code == 200:
                for entry in r.json()["entry"]:
                    path, _, version = entry["response"]["location"].partition("/_history/")
                    created.append((path, version))
            with self._lock:
                self.created += created
        except httpx.HTTPError as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.ended = time.monotonic()
        with self._lock:
            self.outcomes.append(outcome)


def _patient(tag: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": TAG_SYSTEM, "value": tag}]}


def _transaction(tag: str, size: int) -> dict[str, Any]:
    """A transaction creating ``size`` Patients that all carry the identifier ``tag``."""
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": _patient(tag),
         "request": {"method": "POST", "url": "Patient"}} for _ in range(size)]}


def _counts_by_tag(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The number of current resources carrying each test tag."""
    rows = conn.execute(
        "SELECT i->>'value', count(*) FROM resource r,"
        " jsonb_array_elements(r.content->'identifier') i WHERE i->>'system' = %s"
        " GROUP BY 1", (TAG_SYSTEM,)).fetchall()
    return {str(tag): int(count) for tag, count in rows}


def _transaction_sizes(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """How many resources carry each test tag, checking their history rows agree."""
    rows = conn.execute(
        "SELECT i->>'value', count(*), sum((SELECT count(*) FROM resource_history h"
        " WHERE h.resource_type = r.resource_type AND h.id = r.id))"
        " FROM resource r, jsonb_array_elements(r.content->'identifier') i"
        " WHERE i->>'system' = %s GROUP BY 1", (TAG_SYSTEM,)).fetchall()
    for tag, count, history in rows:
        assert history == count, f"{tag}: {count} resources but {history} history rows"
    return {str(tag): int(count) for tag, count, _ in rows}


def _ready_status(base: str) -> int | None:
    try:
        return httpx.get(f"{base}/api/v1/ready", timeout=10).status_code
    except httpx.HTTPError:
        return None


def test_postgres_restart_under_load(pg_cluster: Cluster, cluster_db: str,
                                     spawn: Spawn) -> None:
    proc, base = spawn(cluster_db, DB_POOL_TIMEOUT="2", DB_STATEMENT_TIMEOUT_MS="5000",
                       DB_POOL_MAX="4")
    dbname = cluster_db.rsplit("/", 1)[1]
    big = uuid.uuid4().hex
    big_result: list[httpx.Response] = []

    def post_big() -> None:
        with httpx.Client(base_url=f"{base}/fhir", timeout=30) as client:
            big_result.append(client.post("", content=json.dumps(_transaction(big, 1000)),
                                          headers=FHIR_JSON))

    try:
        with Load(base) as load:
            time.sleep(1.0)
            # Stop PostgreSQL while a large transaction is running in it, among the load.
            big_thread = threading.Thread(target=post_big)
            big_thread.start()
            with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
                # Only the large one stays open that long.
                assert wait_until(lambda: _in_transaction(admin, dbname, 150) > 0, 20, 0.01)
            stopped_at = time.monotonic()
            pg_cluster.stop("fast")
            to_503 = wait_until(lambda: _ready_status(base) == 503, 10, 0.1)
            # An outage of about 8 s, under load: long enough that psycopg_pool's default
            # reconnection backoff (1, 2, 4, 8 s...) would keep the server down for ~7 s
            # after PostgreSQL is back.
            time.sleep(6.0)
            started_at = time.monotonic()
            pg_cluster.start()
            to_200 = wait_until(lambda: _ready_status(base) == 200, 30, 0.1)
            back_at = time.monotonic()
            time.sleep(2.0)  # the load after recovery
            big_thread.join(30)
        summary = Counter((o.op, o.status or o.error) for o in load.outcomes)
        cut = [o.status for o in load.outcomes if o.started < stopped_at < o.ended]
        print(f"ready -> 503 after {to_503 or 0:.2f} s; -> 200 {back_at - started_at:.2f} s after "
              f"PostgreSQL was back; in flight at the stop: {cut} and the large "
              f"transaction: {[r.status_code for r in big_result]}; {len(load.created)} "
              f"acknowledged; {dict(summary)}")

        assert to_503 is not None, "/api/v1/ready did not turn 503"
        assert to_503 <= 5.0, f"/api/v1/ready took {to_503:.1f} s to turn 503"
        assert to_200 is not None, "/api/v1/ready never turned 200 again"
        assert back_at - started_at <= 3.5, (
            f"/api/v1/ready took {back_at - started_at:.1f} s to turn 200 again")

        # The server itself stayed reachable, and every failure is a 503 OperationOutcome.
        errors = [o for o in load.outcomes if o.error]
        assert not errors, errors[:5]
        assert len(big_result) == 1
        assert Outcome(0, 0, "big", big_result[0].status_code,
                       big_result[0].content).is_outcome_503(), big_result[0].text[:300]
        failed = [o for o in load.outcomes if o.status not in (200, 201)]
        assert failed, "no request failed: the outage was not exercised"
        bad = [(o.op, o.status, o.body[:200]) for o in failed if not o.is_outcome_503()]
        assert not bad, bad[:5]
        before = [o for o in load.outcomes if o.ended < stopped_at]
        assert before and all(o.status in (200, 201) for o in before)
        after = [o for o in load.outcomes if o.started > back_at]
        assert len(after) >= 10
        late = [(o.op, o.status, o.body[:200]) for o in after if o.status not in (200, 201)]
        assert not late, f"requests still failing after recovery: {late[:5]}"

        # No data lost: every acknowledged create is there, in the version announced.
        with httpx.Client(base_url=f"{base}/fhir", timeout=30) as client:
            for path, version in load.created:
                r = client.get(path)
                assert r.status_code == 200, (path, r.text[:200])
                assert r.json()["meta"]["versionId"] == version
        with psycopg.connect(cluster_db) as conn:
            ids = {row[0] for row in conn.execute(
                "SELECT id FROM resource WHERE resource_type = 'Patient'").fetchall()}
            assert {p.split("/")[1] for p, _ in load.created} <= ids
            # Transactions interrupted by the restart left nothing behind.
            sizes = _transaction_sizes(conn)
            assert big not in sizes
            assert all(n == (3 if "-t" in tag else 1) for tag, n in sizes.items()), sizes
    finally:
        if not pg_cluster.running():
            pg_cluster.start()
        stop_server(proc)


def test_quick_postgres_restart_fails_no_request(pg_cluster: Cluster, cluster_db: str,
                                                 spawn: Spawn) -> None:
    """Idle pooled connections closed by a restart are replaced, not used and failed."""
    _, base = spawn(cluster_db, DB_POOL_TIMEOUT="2", DB_POOL_MIN="4", DB_POOL_MAX="4")
    with httpx.Client(base_url=f"{base}/fhir", timeout=30) as client:
        def warm(_: int) -> int:
            return client.get("Patient", params={"_total": "accurate"}).status_code

        with ThreadPoolExecutor(8) as pool:  # every pooled connection has been used
            assert set(pool.map(warm, range(32))) == {200}
        with psycopg.connect(pg_cluster.url()) as admin:
            assert _sessions(admin, cluster_db.rsplit("/", 1)[1]) == 4
        pg_cluster.stop("fast")
        pg_cluster.start()
        statuses = [client.get("Patient", params={"_count": "1"}).status_code
                    for _ in range(8)]
        assert _ready_status(base) == 200
    assert statuses == [200] * 8, statuses


def _in_transaction(conn: psycopg.Connection[Any], dbname: str, for_ms: int = 0) -> int:
    """Sessions of the server in a transaction that has written (uncommitted) rows and has
    been open for at least ``for_ms``."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        " AND state IN ('active', 'idle in transaction') AND backend_xid IS NOT NULL"
        " AND xact_start <= clock_timestamp() - make_interval(secs => %s / 1000.0)",
        (dbname, for_ms)).fetchone()
    return int(row[0]) if row else 0


def _sessions(conn: psycopg.Connection[Any], dbname: str) -> int:
    row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                       " AND pid <> pg_backend_pid()", (dbname,)).fetchone()
    return int(row[0]) if row else 0


def test_sigkill_during_transaction_load_leaves_no_partial_transaction(
        pg_cluster: Cluster, cluster_db: str, spawn: Spawn) -> None:
    size, threads = 20, 6
    dbname = cluster_db.rsplit("/", 1)[1]
    proc, base = spawn(cluster_db, DB_POOL_MAX=str(threads))
    sent: dict[str, int | str] = {}  # tag -> status, or the client error
    lock = threading.Lock()
    stop = threading.Event()

    def post_bundles() -> None:
        with httpx.Client(base_url=f"{base}/fhir", timeout=30) as client:
            while not stop.is_set():
                tag = uuid.uuid4().hex
                body = json.dumps(_transaction(tag, size))
                try:
                    result: int | str = client.post("", content=body,
                                                    headers=FHIR_JSON).status_code
                except httpx.HTTPError as exc:
                    result = type(exc).__name__
                    stop.set()
                with lock:
                    sent[tag] = result

    workers = [threading.Thread(target=post_bundles, daemon=True) for _ in range(threads)]
    try:
        for w in workers:
            w.start()
        # Kill once some bundles are committed and some transactions are open.
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            def mid_load() -> bool:
                with lock:
                    done = sum(1 for s in sent.values() if s == 200)
                return done >= 10 and _in_transaction(admin, dbname) > 0

            assert wait_until(mid_load, 30, 0.005) is not None, "no transaction in flight"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            stop.set()
            for w in workers:
                w.join(30)
            # The killed server's sessions end (rolled back) once PostgreSQL sees the
            # sockets closed.
            assert wait_until(lambda: _sessions(admin, dbname) == 0, 15) is not None
    finally:
        stop.set()

    statuses = Counter(sent.values())
    print(f"bundles: {dict(statuses)}")
    assert proc.returncode == -signal.SIGKILL
    assert set(statuses) <= {200, "RemoteProtocolError", "ReadError", "ConnectError"}, statuses
    assert statuses[200] >= 10
    interrupted = [t for t, s in sent.items() if s != 200]
    assert interrupted, "no request was in flight when the server was killed"

    with psycopg.connect(cluster_db) as conn:
        # Every transaction is all or nothing, resources and history rows alike.
        counts = _counts_by_tag(conn)
        assert set(_transaction_sizes(conn).values()) <= {size}
        assert all(counts.get(t) == size for t, s in sent.items() if s == 200)
        assert set(counts) <= set(sent)
        # No index rows without their resource, no resource without its index rows.
        for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname ="
                                     " 'public' AND tablename LIKE 'idx\\_%'").fetchall():
            orphans = conn.execute(
                f"SELECT count(*) FROM {table} x"
                " WHERE NOT EXISTS (SELECT 1 FROM resource r WHERE r.rid = x.rid)").fetchone()
            assert orphans == (0,), table
        unindexed = conn.execute(
            "SELECT count(*) FROM resource r WHERE r.resource_type = 'Patient' AND NOT EXISTS"
            " (SELECT 1 FROM idx_token t WHERE t.rid = r.rid)").fetchone()
        assert unindexed == (0,)

    # A new server on the same database serves the committed bundles in full.
    proc, base = spawn(cluster_db)
    try:
        with httpx.Client(base_url=f"{base}/fhir", timeout=30) as client:
            for tag in [t for t, s in sent.items() if s == 200][:3] + interrupted[:3]:
                found = client.get("Patient", params={
                    "identifier": f"{TAG_SYSTEM}|{tag}", "_total": "accurate"}).json()
                assert found["total"] == counts.get(tag, 0)
    finally:
        stop_server(proc)


def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones(
        cluster_db: str, spawn: Spawn) -> None:
    grace = 5.0
    dbname = cluster_db.rsplit("/", 1)[1]
    proc, base = spawn(cluster_db, SHUTDOWN_GRACE_SECONDS=str(int(grace)), DB_POOL_MAX="4")
    results: dict[str, httpx.Response | str] = {}
    uploading = threading.Event()

    def slow_body(payload: bytes, seconds: float) -> Iterator[bytes]:
        """The body in ten parts over ``seconds``: the request is in flight meanwhile."""
        step = len(payload) // 10 + 1
        for n in range(0, len(payload), step):
            yield payload[n:n + step]
            uploading.set()
            time.sleep(seconds / 10)

    def send(name: str, body: bytes | Iterator[bytes]) -> None:
        try:
            with httpx.Client(base_url=f"{base}/fhir", timeout=60) as client:
                results[name] = client.post("", content=body, headers=FHIR_JSON)
        except httpx.HTTPError as exc:
            results[name] = f"{type(exc).__name__}: {exc}"

    big, slow = uuid.uuid4().hex, uuid.uuid4().hex
    requests = [
        # A large transaction, busy in the database when the signal arrives.
        threading.Thread(target=send, args=("big", json.dumps(_transaction(big, 300))
                                            .encode())),
        # A transaction whose body is still being uploaded when the signal arrives.
        threading.Thread(target=send, args=("slow", slow_body(
            json.dumps(_transaction(slow, 5)).encode(), 2.5))),
    ]
    with psycopg.connect(cluster_db, autocommit=True) as admin:
        for r in requests:
            r.start()
        in_flight = lambda: uploading.is_set() and _in_transaction(admin, dbname) > 0  # noqa: E731
        assert wait_until(in_flight, 20, 0.005) is not None
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)

    # New connections are refused soon after the signal.
    def refused() -> bool:
        try:
            httpx.get(f"{base}/api/v1/health", timeout=2)
        except httpx.ConnectError:
            return True
        except httpx.HTTPError:
            return False
        return False

    to_refused = wait_until(refused, 3, 0.05)
    assert to_refused is not None and to_refused <= 1.0, "still accepting after SIGTERM"
    assert refused()

    # The process exits within the grace period (plus start-up slack of the shutdown).
    try:
        proc.wait(grace + 3)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {grace + 3} s after SIGTERM")
    exited = time.monotonic() - signalled
    for r in requests:
        r.join(30)
    print(f"refused after {to_refused:.2f} s; exited after {exited:.2f} s with "
          f"{proc.returncode}; in flight: "
          f"{ {k: getattr(v, 'status_code', v) for k, v in results.items()} }")

    # Both in-flight requests completed, and their transactions are in the database.
    for name in ("big", "slow"):
        response = results.get(name)
        assert isinstance(response, httpx.Response), (name, response)
        assert response.status_code == 200, (name, response.text[:300])
    with psycopg.connect(cluster_db) as conn:
        assert _counts_by_tag(conn) == {big: 300, slow: 5}
    assert exited <= grace + 2
    assert proc.returncode == 0, f"exit status {proc.returncode} after SIGTERM"
