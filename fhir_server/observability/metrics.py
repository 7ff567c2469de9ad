"""Prometheus metrics of the server, the ``/metrics`` route and the per-worker sampler.

Single process: values live in memory, in a registry owned by :class:`FhirMetrics`.
Several workers (``PROMETHEUS_MULTIPROC_DIR`` set before prometheus_client was first
imported, see ``multiproc.py``): each worker writes memory-mapped files and a scrape merges
every worker's files; gauges are per worker and merged by their ``multiprocess_mode``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import resource
from collections.abc import Callable, Iterable, Mapping
from typing import Final, NamedTuple, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_server.observability.interactions import SEARCHES
from fhir_server.observability.multiproc import active_multiprocess_dir, reap_dead_workers

log = logging.getLogger(__name__)

#: Prometheus text exposition format 0.0.4.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: Latency buckets in seconds, 1 ms to 10 s: about three per decade, denser where FHIR
#: reads and searches sit (5-250 ms), so p50/p95/p99 interpolate within ~1.5x.
DURATION_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075,
                           0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)

_STATUS_CLASSES: Final = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_PAGE_SIZE: Final = resource.getpagesize()


class PoolLike(Protocol):
    """What the pool gauges need of ``psycopg_pool.AsyncConnectionPool``."""

    def get_stats(self) -> dict[str, int]:
        """Current pool measures (``pool_size``, ``pool_available``, ...)."""
        ...


def outcome(status: int) -> str:
    """``fhir_transactions_total{outcome}`` of a final HTTP status."""
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "success"


class RequestSeries(NamedTuple):
    """The label children one kind of request updates (see :meth:`FhirMetrics.series`)."""

    requests: Counter
    duration: Histogram
    #: ``fhir_searches_total`` child for search interactions, else None.
    search: Counter | None
    #: ``fhir_transactions_total`` child for batch/transaction Bundles, else None.
    transaction: Counter | None


class _WithoutCreated:
    """A registry view without the ``*_created`` samples (multiprocess mode has none;
    in-process they would double the series count for nothing)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for metric in self._registry.collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class FhirMetrics:
    """Every metric the server exports (label children are cached by the middleware).

    Create one per process (:func:`default_metrics`); tests may create their own, which
    are isolated when in-process. In multiprocess mode two instances in one process would
    overwrite each other's file values, hence the process-wide default.
    """

    def __init__(self) -> None:
        """Create the metrics in a private registry (never the global REGISTRY)."""
        self.multiprocess_dir = active_multiprocess_dir()
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests", "HTTP requests by method, route template and status class.",
            ("method", "route", "status_class"), registry=r)
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Request latency by FHIR interaction and resource type.",
            ("interaction", "resource_type"), buckets=DURATION_BUCKETS, registry=r)
        self.searches = Counter(
            "fhir_searches", "FHIR search requests by resource type ('-': system search).",
            ("resource_type",), registry=r)
        self.transactions = Counter(
            "fhir_transactions", "batch and transaction Bundles by type and outcome.",
            ("type", "outcome"), registry=r)
        # Gauges are per worker: summed over live workers (pool, memory), or the most
        # recent report wins (job counts come from the database: all workers agree).
        self.pool = Gauge(
            "fhir_db_pool_connections", "Database pool connections by state (all workers).",
            ("state",), multiprocess_mode="livesum", registry=r)
        self.jobs = Gauge(
            "fhir_background_jobs", "Background jobs by kind and status.",
            ("kind", "status"), multiprocess_mode="livemostrecent", registry=r)
        # The audit trail's staging backlog (read from the database: all workers agree).
        self.audit_staged = Gauge(
            "fhir_audit_staged_events",
            "AuditEvents stored but not yet searchable (staged, all workers).",
            multiprocess_mode="livemostrecent", registry=r)
        self.audit_staged_age = Gauge(
            "fhir_audit_staged_oldest_seconds",
            "Age of the oldest staged AuditEvent, in seconds (0: none staged).",
            multiprocess_mode="livemostrecent", registry=r)
        # Where reads (by id, searches, histories) of requests ran, with a read replica.
        self.reads = Counter(
            "fhir_db_reads", "Reads of requests by the database that served them (primary,"
            " replica) and why the primary did (recent-write, replica-down, "
            "replica-lagging, replica-error; '-': the replica served it).",
            ("target", "reason"), registry=r)
        self.replica_lag = Gauge(
            "fhir_db_replica_lag_seconds",
            "How far the read replica's replay is behind the primary (-1: unknown).",
            multiprocess_mode="livemax", registry=r)
        self.memory = Gauge(
            "process_resident_memory_bytes", "Resident memory of the live workers, in bytes.",
            multiprocess_mode="livesum", registry=r)
        # A counter fed with deltas: its total keeps dead workers' CPU, so it never drops.
        self.cpu = Counter(
            "process_cpu_seconds", "User and system CPU time of all workers, in seconds.",
            registry=r)
        self._cpu_seen = 0.0
        self._jobs_seen: set[tuple[str, str]] = set()

    def series(self, method: str, route: str, status: int, interaction: str,
               resource_type: str, bundle_type: str | None) -> RequestSeries:
        """The label children a finished request updates (cache them: ``labels()`` costs
        more than the increments; every argument must already be a bounded value)."""
        return RequestSeries(
            self.requests.labels(method, route, _STATUS_CLASSES.get(status // 100, "5xx")),
            self.duration.labels(interaction, resource_type),
            self.searches.labels(resource_type) if interaction in SEARCHES else None,
            self.transactions.labels(bundle_type, outcome(status))
            if bundle_type is not None else None,
        )

    def observe(self, series: RequestSeries, seconds: float) -> None:
        """Count one request of ``series`` that took ``seconds``."""
        series.requests.inc()
        series.duration.observe(seconds)
        if series.search is not None:
            series.search.inc()
        if series.transaction is not None:
            series.transaction.inc()

    def set_background_jobs(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Set ``fhir_background_jobs`` to ``{(kind, status): count}``.

        Pairs reported before but missing now are set to 0 (series cannot be removed in
        multiprocess mode, and a stale "running" would lie).
        """
        for key in self._jobs_seen - counts.keys():
            self.jobs.labels(*key).set(0)
        for key, count in counts.items():
            self.jobs.labels(*key).set(count)
        self._jobs_seen |= counts.keys()

    def update_pool(self, pool: PoolLike | None) -> None:
        """Set ``fhir_db_pool_connections`` from ``pool.get_stats()`` (cheap, no I/O).

        ``in_use`` is ``pool_size - pool_available``: it includes connections still
        being opened (psycopg_pool counts them in ``pool_size``).
        """
        if pool is None:
            return
        stats = pool.get_stats()
        size = stats.get("pool_size", 0)
        idle = stats.get("pool_available", 0)
        for state, value in (("in_use", size - idle), ("idle", idle),
                             ("waiting", stats.get("requests_waiting", 0)), ("size", size),
                             ("max", stats.get("pool_max", 0))):
            self.pool.labels(state).set(value)

    def sample_process(self) -> None:
        """Update this worker's resident memory and CPU time."""
        self.memory.set(_resident_bytes())
        times = os.times()
        cpu = times.user + times.system
        if cpu > self._cpu_seen:
            self.cpu.inc(cpu - self._cpu_seen)
            self._cpu_seen = cpu

    def exposition(self) -> bytes:
        """The text exposition (format 0.0.4) of every worker's metrics.

        Blocking (reads every worker's files in multiprocess mode): run it in a thread.
        """
        if self.multiprocess_dir is None:
            return generate_latest(_WithoutCreated(self.registry))
        reap_dead_workers(self.multiprocess_dir)
        merged = CollectorRegistry(auto_describe=False)
        # prometheus_client.multiprocess has no annotations.
        MultiProcessCollector(merged, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(merged)


def _resident_bytes() -> float:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return float(int(statm.read().split()[1]) * _PAGE_SIZE)
    except (OSError, ValueError, IndexError):
        # Not Linux: the peak is the best cheap figure (kB on Linux, bytes on macOS).
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


@functools.cache
def default_metrics() -> FhirMetrics:
    """This process's metrics, created on first use.

    Process-wide on purpose (the only module-level state here): prometheus-client's
    multiprocess mode keeps one set of files per process, and two metric objects of the
    same name in one process would overwrite each other's values.
    """
    return FhirMetrics()


def set_background_jobs(counts: Mapping[tuple[str, str], int]) -> None:
    """Report the background jobs as ``{(kind, status): count}`` (e.g. from the jobs table).

    Call it whenever convenient (each job-runner poll); any worker may call it.
    """
    default_metrics().set_background_jobs(counts)


def set_audit_backlog(staged: int, oldest_seconds: float) -> None:
    """Report the audit trail's staging backlog (events, age of the oldest)."""
    m = default_metrics()
    m.audit_staged.set(staged)
    m.audit_staged_age.set(oldest_seconds)


def count_read(target: str, reason: str) -> None:
    """Count one read of a request: where it ran and why (``Replica``'s report)."""
    default_metrics().reads.labels(target, reason).inc()


def set_replica_lag(lag: float | None) -> None:
    """Report the read replica's lag in seconds (None: unknown)."""
    default_metrics().replica_lag.set(-1.0 if lag is None else lag)


def _pool_or_none(pool_getter: Callable[[], PoolLike | None]) -> PoolLike | None:
    try:
        return pool_getter()
    except AttributeError:  # lifespan not started yet: no pool on app.state
        return None


def metrics_route(pool_getter: Callable[[], PoolLike | None], *, path: str = "/metrics",
                  metrics: FhirMetrics | None = None) -> Route:
    """A ``GET /metrics`` route answering the Prometheus text format 0.0.4.

    ``pool_getter`` returns this worker's pool (or None, or raises AttributeError before
    the lifespan made it). The scraped worker refreshes its own gauges first; the other
    workers' gauges are as fresh as their :func:`sample_forever` interval.
    """

    async def endpoint(request: Request) -> Response:
        m = metrics or default_metrics()
        # Pool stats are read on the event loop (the pool mutates them there) ...
        m.update_pool(_pool_or_none(pool_getter))
        # ... the /proc read and the merge of every worker's files in a thread.
        body = await run_in_threadpool(_sample_and_expose, m)
        return Response(body, headers={"Content-Type": CONTENT_TYPE,
                                       "Cache-Control": "no-store"})

    return Route(path, endpoint, methods=["GET"], name="metrics")


def _sample_and_expose(m: FhirMetrics) -> bytes:
    m.sample_process()
    return m.exposition()


async def sample_forever(pool_getter: Callable[[], PoolLike | None], *,
                         interval: float = 10.0, metrics: FhirMetrics | None = None) -> None:
    """Refresh this worker's pool, memory and CPU gauges every ``interval`` seconds.

    Run it as a task in each worker's lifespan and cancel it on shutdown: in
    multiprocess mode only the scraped worker samples itself at scrape time.
    """
    m = metrics or default_metrics()
    while True:
        try:
            m.update_pool(_pool_or_none(pool_getter))
            m.sample_process()
        except Exception:  # a metrics hiccup must not end the sampling for good
            log.exception("sampling the process metrics failed")
        await asyncio.sleep(interval)
