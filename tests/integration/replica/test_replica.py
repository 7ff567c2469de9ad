"""Reads on a real streaming standby (DATABASE_READ_URL), in process.

A private primary and its standby (standby.py) serve one app; two callers (tokens of
two clients) write and read. Where each read ran is asserted through /metrics
(``fhir_db_reads_total{target, reason}``), and what it found through the answers: a
read that the replica could not have answered (a write it has not replayed) must still
find the resource.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from starlette.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.auth.keys import SigningKeys, read_keys
from fhir_server.auth.tokens import issue_access_token, issuer_for
from fhir_server.paths import data_dir
from fhir_server.settings import load_settings
from fhir_server.storage.admin import apply_migrations
from tests.integration.ops.cluster import Cluster, wait_until
from tests.integration.replica.standby import Standby, primary_and_standby, replayed

pytestmark = pytest.mark.xdist_group("replica")

BASE = "http://localhost"
FHIR = f"{BASE}/fhir"
_SAMPLE = re.compile(r'^fhir_db_reads_total\{reason="([^"]*)",target="([^"]*)"\} (\S+)$', re.M)


@dataclass
class Harness:
    client: TestClient
    keys: SigningKeys
    primary: Cluster
    standby: Standby

    def headers(self, client_id: str) -> dict[str, str]:
        token, _ = issue_access_token(self.keys, issuer=issuer_for(FHIR), audience=FHIR,
                                      client_id=client_id, scope="system/*.*", ttl=600)
        return {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}

    def reads(self) -> dict[tuple[str, str], float]:
        text = self.client.get("/metrics").text
        return {(target, reason): float(v) for reason, target, v in _SAMPLE.findall(text)}

    def ready(self) -> dict[str, object]:
        answer = self.client.get("/api/v1/ready")
        assert answer.status_code == 200, answer.text
        body: dict[str, object] = answer.json()
        return body

    def replica_is(self, state: str, timeout: float = 10) -> None:
        assert wait_until(lambda: self.ready()["replica"] == state, timeout, 0.1) is not None, (
            f"the replica never became {state}: {self.ready()}")

    def create(self, client_id: str, family: str) -> str:
        created = self.client.post("/fhir/Patient", headers=self.headers(client_id), json={
            "resourceType": "Patient", "name": [{"family": family}]})
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with primary_and_standby() as (primary, standby):
        url = primary.create_database("fhir")
        apply_migrations(url, data_dir("migrations"))
        settings = load_settings({
            "DATABASE_URL": url, "DATABASE_READ_URL": standby.url("fhir"),
            "AUDIT": "false", "DB_POOL_MIN": "1", "DB_POOL_MAX": "4",
            "DB_READ_POOL_MIN": "1", "DB_READ_POOL_MAX": "3",
            "READ_YOUR_WRITES_SECONDS": "3", "READ_REPLICA_MAX_LAG_SECONDS": "1",
            "MAX_IN_FLIGHT_PER_CLIENT": "0", "DB_POOL_TIMEOUT": "3"}, env_file=None)
        with TestClient(create_app(settings), base_url=BASE) as client:
            h = Harness(client, read_keys(url), primary, standby)
            h.replica_is("connected")
            yield h


def _delta(after: dict[tuple[str, str], float], before: dict[tuple[str, str], float],
           target: str, reason: str) -> float:
    return after.get((target, reason), 0.0) - before.get((target, reason), 0.0)


def test_ready_reports_the_primary_and_the_replica(harness: Harness) -> None:
    body = harness.ready()
    assert body["status"] == "ready"
    assert body["database"] == "connected"
    assert body["migrations"] == "up to date"
    assert body["replica"] == "connected"
    assert isinstance(body["replicaLagSeconds"], float)
    assert 0.0 <= body["replicaLagSeconds"] <= 1.0


def test_own_write_is_read_from_the_primary_and_other_callers_read_the_replica(
        harness: Harness) -> None:
    before = harness.reads()
    id = harness.create("writer", "Chalmers")
    read = harness.client.get(f"/fhir/Patient/{id}", headers=harness.headers("writer"))
    assert read.status_code == 200
    assert read.json()["name"] == [{"family": "Chalmers"}]
    middle = harness.reads()
    assert _delta(middle, before, "primary", "recent-write") == 1
    assert _delta(middle, before, "replica", "-") == 0

    replayed(harness.primary, harness.standby)
    other = harness.headers("reader")
    found = harness.client.get(f"/fhir/Patient?_id={id}", headers=other)
    assert found.status_code == 200
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [id]
    assert harness.client.get(f"/fhir/Patient/{id}", headers=other).status_code == 200
    history = harness.client.get(f"/fhir/Patient/{id}/_history", headers=other)
    assert history.status_code == 200
    assert len(history.json()["entry"]) == 1
    after = harness.reads()
    assert _delta(after, middle, "replica", "-") == 3  # search, read, history
    assert _delta(after, middle, "primary", "recent-write") == 0

    # the writer's window ends: its reads go to the replica again
    time.sleep(3.1)
    assert harness.client.get(f"/fhir/Patient/{id}",
                              headers=harness.headers("writer")).status_code == 200
    assert _delta(harness.reads(), after, "replica", "-") == 1


def test_a_lagging_replica_leaves_reads_on_the_primary(harness: Harness) -> None:
    harness.standby.replay(paused=True)
    try:
        id = harness.create("writer", "Lagging")
        harness.replica_is("lagging")
        lag = harness.ready()["replicaLagSeconds"]
        assert isinstance(lag, float) and lag > 1.0
        before = harness.reads()
        # the replica has not replayed the create: only the primary can answer this
        read = harness.client.get(f"/fhir/Patient/{id}", headers=harness.headers("reader"))
        assert read.status_code == 200
        assert _delta(harness.reads(), before, "primary", "replica-lagging") == 1
    finally:
        harness.standby.replay(paused=False)
    harness.replica_is("connected")


def test_a_stopped_replica_leaves_reads_answered_by_the_primary(harness: Harness) -> None:
    id = harness.create("writer", "Stopped")
    other = harness.headers("reader")
    harness.standby.stop()
    try:
        before = harness.reads()
        found = harness.client.get(f"/fhir/Patient?_id={id}", headers=other)
        assert found.status_code == 200
        assert [e["resource"]["id"] for e in found.json()["entry"]] == [id]
        after = harness.reads()
        fell_back = (_delta(after, before, "primary", "replica-error")
                     + _delta(after, before, "primary", "replica-down"))
        assert fell_back == 1
        assert _delta(after, before, "replica", "-") <= 1  # chosen, then failed over
        harness.replica_is("disconnected")
        body = harness.ready()
        assert (body["status"], body["database"], body["replicaLagSeconds"]) == (
            "ready", "connected", None)
        assert harness.client.get(f"/fhir/Patient/{id}", headers=other).status_code == 200
    finally:
        harness.standby.start()
    harness.replica_is("connected")
    before = harness.reads()
    assert harness.client.get(f"/fhir/Patient/{id}", headers=other).status_code == 200
    assert _delta(harness.reads(), before, "replica", "-") == 1
