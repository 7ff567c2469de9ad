"""A PostgreSQL streaming replica for reads (``DATABASE_READ_URL``).

Reads by id, searches and histories of a request go to the replica's pool, unless:

- no request asks (background jobs, the audit mover, the command line: the primary);
- the caller wrote within ``READ_YOUR_WRITES_SECONDS`` (``RecentWrites``);
- the replica is down (its last connection or lag probe failed), or its replay is more
  than ``READ_REPLICA_MAX_LAG_SECONDS`` behind the primary;
- the read failed on the replica (connection lost, a query cancelled for a recovery
  conflict): it is run again on the primary.

Writes, transactions (conditional interactions, Bundles), ``_explain`` of a caller who
just wrote, and the job tables never use it. Every read is counted by where it went and
why (``fhir_db_reads_total{target, reason}``); every fall-back to the primary for the
replica's sake is logged when the replica's state changes, and each failed read is.

The lag is measured without trusting the replica's clock or its replay timestamp (which
stands still while the primary is idle): every ``interval`` the primary's WAL position
is sampled, and the replica is as far behind as the oldest sample it has not replayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Protocol

from fhir_server.errors import Conflict, FhirError, ServiceUnavailable, Timeout
from fhir_server.service.consistency import current_caller
from fhir_server.storage.pool import FhirPool

log = logging.getLogger(__name__)

_PRIMARY_LSN = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
#: a server not in recovery (pointed at as a replica by mistake, or promoted) is current
_REPLICA_LSN = ("SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery()"
                " THEN pg_last_wal_replay_lsn() - '0/0'::pg_lsn END")
#: seconds a probe query may take before the replica counts as down
PROBE_TIMEOUT = 2.0


class WriteLog(Protocol):
    """Who wrote lately (``fhir_server.cache.recent_writes.RecentWrites``)."""

    async def note(self, caller: str) -> None:
        """``caller`` has just written."""
        ...

    async def recent(self, caller: str) -> bool:
        """Whether ``caller`` wrote within the window."""
        ...


#: (target, reason) of one read: ``replica``/``-``, ``primary``/why
Report = Callable[[str, str], None]


def failed_on_replica(exc: FhirError) -> bool:
    """Whether a read that failed on the replica is worth running on the primary: the
    replica went away or cancelled it for a recovery conflict (SQLSTATE 40001, a 409
    here), not a statement that ran past its time limit (which would on the primary)."""
    return isinstance(exc, Conflict) or (isinstance(exc, ServiceUnavailable)
                                         and not isinstance(exc, Timeout))


class Replica:
    """The replica's pool, its measured lag, and the choice of database per read."""

    def __init__(self, pool: FhirPool, primary: FhirPool, max_lag: float,
                 recent: WriteLog, report: Report = lambda target, reason: None,
                 report_lag: Callable[[float | None], None] = lambda lag: None,
                 interval: float = 1.0) -> None:
        self.pool = pool
        self._primary = primary
        self.max_lag = max_lag
        self.recent = recent
        self._report = report
        self._report_lag = report_lag
        self._interval = interval
        #: (when, primary WAL position) samples, oldest first
        self._samples: deque[tuple[float, int]] = deque()
        self._keep = max(30.0, 3 * max_lag)
        #: seconds behind the primary (None: unknown: the replica did not answer)
        self.lag: float | None = None
        self._unusable: str | None = "replica-down"  # until the first probe answers

    @property
    def state(self) -> str:
        """``connected``, ``lagging`` or ``disconnected`` (readiness)."""
        if self.lag is None or self.pool.known_down:
            return "disconnected"
        return "lagging" if self.lag > self.max_lag else "connected"

    def _set_usable(self, reason: str | None) -> None:
        if reason != self._unusable:
            if reason is None:
                log.info("the read replica is in use again (lag %.1f s)", self.lag or 0.0)
            else:
                log.warning("reads fall back to the primary: %s (lag %s, at most %g s)",
                            reason, "unknown" if self.lag is None else f"{self.lag:.1f} s",
                            self.max_lag)
        self._unusable = reason

    async def probe(self) -> None:
        """Sample the primary's WAL position, then measure how far the replica is."""
        now = monotonic()
        try:
            async with self._primary.connection(timeout=PROBE_TIMEOUT) as conn:
                cur = await conn.execute(_PRIMARY_LSN)
                row = await cur.fetchone()
            if row is not None:
                self._samples.append((now, int(row[0])))
        except Exception as exc:  # the primary away: the samples taken still tell
            log.debug("cannot sample the primary's WAL position: %s", exc)
        while self._samples and self._samples[0][0] < now - self._keep:
            self._samples.popleft()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT), self.pool.connection(
                    timeout=PROBE_TIMEOUT) as conn:
                cur = await conn.execute(_REPLICA_LSN)
                row = await cur.fetchone()
        except Exception as exc:
            self.lag = None
            self._set_usable("replica-down")
            log.debug("the read replica does not answer: %s", exc)
            return
        assert row is not None
        in_recovery, replayed = row
        self.lag = 0.0 if not in_recovery else self._behind(int(replayed or 0))
        self._set_usable("replica-lagging" if self.lag > self.max_lag else None)

    def _behind(self, replayed: int) -> float:
        """Seconds since the oldest primary position the replica has not replayed."""
        for when, position in self._samples:
            if position > replayed:
                return max(0.0, monotonic() - when)
        return 0.0

    async def probe_forever(self) -> None:
        """``probe`` every ``interval`` seconds (a task of the lifespan)."""
        while True:
            try:
                await self.probe()
                self._report_lag(self.lag)
            except Exception:  # a probe's bug must not end the probing for good
                log.exception("probing the read replica failed")
            await asyncio.sleep(self._interval)

    async def choose(self) -> FhirPool | None:
        """The replica's pool if this request's reads may use it now, else None."""
        caller = current_caller()
        if caller is None:
            return None
        if await self.recent.recent(caller):
            self._report("primary", "recent-write")
            return None
        reason = self._unusable or ("replica-down" if self.pool.known_down else None)
        if reason is not None:
            self._report("primary", reason)
            return None
        self._report("replica", "-")
        return self.pool

    def failed(self, exc: FhirError) -> None:
        """A read failed on the replica and is run on the primary."""
        log.warning("a read failed on the replica and runs on the primary: %s",
                    exc.diagnostics)
        self._report("primary", "replica-error")

    async def wrote(self) -> None:
        """The current request's caller has written (committed)."""
        caller = current_caller()
        if caller is not None:
            await self.recent.note(caller)
