"""Database down: once the server knows (a connection attempt failed), FHIR requests
answer 503 with Retry-After at once instead of waiting DB_POOL_TIMEOUT.

The outage is the server's own scratch database refusing connections
(``ALLOW_CONNECTIONS false``) with every session on it terminated: to the server that
is PostgreSQL gone, while the rest of the PostgreSQL server keeps serving other tests."""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg
from psycopg import sql

from tests.conftest import scratch_database
from tests.integration.limits.conftest import capped_server


def _take_down(admin_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
            sql.Identifier(str(name))))
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE datname = %s", (name,))


def test_fhir_answers_503_with_retry_after_at_once_while_the_database_is_down(
        database_url: str) -> None:
    with scratch_database(database_url, "limits_outage") as url, \
            capped_server(url, DB_POOL_TIMEOUT="10") as s, \
            httpx.Client(base_url=s.root, timeout=30) as c:
        assert c.get("/fhir/Patient?name=x").status_code == 200
        _take_down(database_url, url)
        # The first request may wait DB_POOL_TIMEOUT; once one has failed (or readiness
        # has), the server knows. Searches never asked before: Redis may cache the others.
        deadline = time.monotonic() + 30
        while (answer := c.get(f"/fhir/Patient?name={uuid.uuid4().hex}")).status_code != 503:
            assert time.monotonic() < deadline, ("no 503 while the database is down",
                                                 answer.status_code, answer.text[:300])
            c.get("/api/v1/ready")
        for path in ("/fhir/Patient?name=", "/fhir/Observation?code=",
                     "/fhir/_history?_since=2020-01-01&x=", "/fhir/Patient?family="):
            path += uuid.uuid4().hex
            started = time.monotonic()
            response = c.get(path)
            took = time.monotonic() - started
            assert response.status_code == 503, (path, response.text[:300])
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["issue"][0]["code"] == "transient"
            assert took < 0.5, (path, took)
        assert c.get("/api/v1/ready").status_code == 503
