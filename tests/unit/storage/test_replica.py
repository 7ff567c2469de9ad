"""The replica's routing without databases: lag from WAL samples, the choice per read."""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any, cast

from fhir_server.errors import Conflict, ServiceUnavailable, Timeout
from fhir_server.service.access import Caller
from fhir_server.service.consistency import caller_key, current_caller, reading_for
from fhir_server.storage.explain import _numbered
from fhir_server.storage.pool import FhirPool
from fhir_server.storage.replica import Replica, failed_on_replica


class _Pool:
    known_down = False


class _Recent:
    def __init__(self) -> None:
        self.callers: set[str] = set()

    async def note(self, caller: str) -> None:
        self.callers.add(caller)

    async def recent(self, caller: str) -> bool:
        return caller in self.callers


def _replica(reports: list[tuple[str, str]]) -> tuple[Replica, Any, _Recent]:
    pool, recent = _Pool(), _Recent()
    replica = Replica(cast(FhirPool, pool), cast(FhirPool, _Pool()), 5.0, recent,
                      report=lambda target, reason: reports.append((target, reason)))
    return replica, pool, recent


def test_the_lag_is_the_age_of_the_oldest_primary_position_not_replayed() -> None:
    replica, _, _ = _replica([])
    now = monotonic()
    replica._samples.extend([(now - 8, 100), (now - 4, 200), (now - 1, 300)])
    assert replica._behind(300) == 0.0
    assert 0.9 < replica._behind(250) < 1.5  # what the primary had 1 s ago is missing
    assert 3.9 < replica._behind(150) < 4.5
    assert 7.9 < replica._behind(50) < 8.5


def test_reads_go_to_the_replica_only_for_a_request_that_did_not_just_write() -> None:
    reports: list[tuple[str, str]] = []
    replica, pool, recent = _replica(reports)
    replica.lag, replica._unusable = 0.0, None

    async def main() -> list[bool]:
        chosen = [await replica.choose() is pool]  # no request: the primary, not counted
        with reading_for("c:a:"):
            chosen.append(await replica.choose() is pool)
            await replica.wrote()
            chosen.append(await replica.choose() is pool)
        with reading_for("c:b:"):
            chosen.append(await replica.choose() is pool)
            pool.known_down = True
            chosen.append(await replica.choose() is pool)
        return chosen

    assert asyncio.run(main()) == [False, True, False, True, False]
    assert recent.callers == {"c:a:"}
    assert reports == [("replica", "-"), ("primary", "recent-write"), ("replica", "-"),
                       ("primary", "replica-down")]
    assert replica.state == "disconnected"


def test_the_state_follows_the_lag() -> None:
    replica, _, _ = _replica([])
    assert replica.state == "disconnected"  # never probed
    replica.lag = 0.5
    assert replica.state == "connected"
    replica.lag = 5.5
    assert replica.state == "lagging"


def test_which_failures_on_the_replica_are_run_again_on_the_primary() -> None:
    assert failed_on_replica(ServiceUnavailable("gone"))
    assert failed_on_replica(Conflict("canceling statement due to conflict with recovery"))
    assert not failed_on_replica(Timeout("too slow"))


def test_the_caller_key_is_client_and_subject_else_the_address() -> None:
    assert caller_key(Caller("app", user="u1"), "10.0.0.1") == "c:app:u1"
    assert caller_key(Caller("app"), None) == "c:app:"
    assert caller_key(None, "10.0.0.1") == "a:10.0.0.1"
    assert current_caller() is None
    with reading_for("a:x"):
        assert current_caller() == "a:x"
    assert current_caller() is None


def test_explained_sql_shows_postgres_placeholders() -> None:
    assert _numbered("SELECT %s, %b, '100%%' WHERE a = %s") == (
        "SELECT $1, $2, '100%' WHERE a = $3")
