"""CachedRepository: a shared Redis read cache of current versions in front of a Repository.

Every replica talks to the same Redis, so an invalidation by one is seen by all at once;
there is no in-process copy. Each resource has one Redis hash ``fhir:[ns:]res:<type>/<id>``:

- ``d``: the cached current version (absent: nothing cached, read the database);
- ``v``: the version of ``d``, or a *floor*: the newest version known to be committed;
- ``p``/``pt``: writers in flight and when the last one began (ms, Redis clock).

A write runs BEGIN (drop ``d``, count the writer) before the database write, and END
after the commit (raise the floor to the version written, uncount the writer). A read
that misses fills the hash with FILL, which refuses a version below the floor and
refuses anything while a writer is in flight. That closes the classic race (a reader
loads version n from the database, a writer commits n+1 and invalidates, the reader then
stores n): the stale fill finds floor n+1 and is dropped. Readers give up filling when
their database read is older than ``max_fill_age`` so a delayed fill cannot outlive
the floor (kept for ``ttl``). BEGIN covers a writer that dies between COMMIT and END:
the entry is already gone and fills stay refused for ``pending_s``, after which any
database read is newer than that commit. Stale data can be served only when a write
reached the database but neither BEGIN nor END reached Redis (Redis unreachable from
that replica alone), and then for at most ``ttl``: the writer replays its END as soon
as Redis answers it again, and bypasses the cache itself until then.

Writes inside ``transaction()`` are counted when made and settled after the transaction
context exits: on COMMIT the floors are raised; on rollback the writers are only
uncounted. Reads inside transactions always go to the database (they must see the
transaction's own writes and must never fill the cache with uncommitted data).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

from redis.asyncio import Redis

from fhir_server.cache.entries import BEGIN, END, FILL, Settle, decode, encode
from fhir_server.cache.redis_client import RedisClient
from fhir_server.cache.scoped import ScopedView
from fhir_server.errors import FhirError, Timeout
from fhir_server.service.access import AccessScope
from fhir_server.service.delegating import Delegating, DelegatingSession
from fhir_server.service.repository import (
    ExplainingStore,
    Readiness,
    Repository,
    Session,
    StoredVersion,
    WriteMethod,
    WriteResult,
)

log = logging.getLogger("fhir_server.cache")


def _certainly_unchanged(exc: BaseException) -> bool:
    """Whether a failed write surely changed nothing: the database refused the statement.

    Connection loss, pool exhaustion and cancellation are ambiguous (the statement may
    have committed), so they are not.
    """
    return isinstance(exc, FhirError) and (exc.status < 500 or isinstance(exc, Timeout))


class CachedRepository(Delegating[Repository]):
    """The Repository protocol over ``inner``, with ``read``/``vread`` cached in Redis.

    History, searches and includes are delegated: they are not cached. A scoped view
    (:meth:`scoped`) reads past the cache, since cached entries know no scope.
    """

    def __init__(self, inner: Repository, client: RedisClient, *, ttl_s: float = 300.0,
                 max_fill_age_s: float = 10.0, pending_s: float = 60.0,
                 max_entry_bytes: int = 1 << 20, max_unsettled: int = 10_000,
                 cache_vread: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        """Wrap ``inner``; entries live ``ttl_s``, old versions (vread) too.

        ``pending_s``: how long a writer that never ended (crash, lost Redis) keeps
        fills of its resource out; must exceed ``max_fill_age_s`` plus a write's duration.
        """
        if not max_fill_age_s < min(ttl_s, pending_s):
            raise ValueError("max_fill_age_s must be below ttl_s and pending_s")
        super().__init__(inner)
        self._client = client
        self._ttl_ms = int(ttl_s * 1000)
        self._ttl_s = ttl_s
        self._pending_ms = int(pending_s * 1000)
        self._max_fill_age = max_fill_age_s
        self._max_entry_bytes = max_entry_bytes
        self._max_unsettled = max_unsettled
        self._cache_vread = cache_vread
        self._clock = clock
        self._begin_script = client.script(BEGIN)
        self._end_script = client.script(END)
        self._fill_script = client.script(FILL)
        #: ENDs that could not reach Redis, merged per key, replayed before the next use
        self._unsettled: dict[str, Settle] = {}
        self._flush_needed = False
        self._replaying = False

    def _key(self, resource_type: str, id: str) -> str:
        return self._client.key("res", f"{resource_type}/{id}")

    # -- cache plumbing ---------------------------------------------------------------

    async def _ready(self) -> bool:
        """Whether reads may use the cache: Redis is up and our own ENDs all landed."""
        if not self._client.available or self._replaying:
            return False
        if self._unsettled or self._flush_needed:
            return await self._replay()
        return True

    async def _replay(self) -> bool:
        self._replaying = True  # readers meanwhile bypass the cache: it may still be stale
        try:
            if self._flush_needed:
                if not await self.flush():
                    return False
                self._flush_needed = False
            entries = list(self._unsettled.values())
            self._unsettled.clear()
            if entries:
                try:
                    ok = await self._end(entries)
                except BaseException:  # cancelled: keep them for the next attempt
                    self._remember(entries)
                    raise
                if not ok:
                    self._remember(entries)
                    return False
                log.info("replayed %d cache invalidations missed while Redis was away",
                         len(entries))
            return True
        finally:
            self._replaying = False

    def _remember(self, entries: Iterable[Settle]) -> None:
        """Keep ENDs that did not reach Redis (no await: safe while being cancelled)."""
        for key, version, dec, drop in entries:
            old = self._unsettled.get(key)
            if old is not None:  # ENDs of one key merge: max floor, summed counts
                version, dec, drop = max(version, old[1]), dec + old[2], drop or old[3]
            self._unsettled[key] = (key, version, dec, drop)
        if len(self._unsettled) > self._max_unsettled:
            log.warning("more than %d missed cache invalidations; the cache will be flushed",
                        self._max_unsettled)
            self._unsettled.clear()
            self._flush_needed = True

    async def _begin(self, key: str) -> bool:
        args = [self._ttl_ms, self._pending_ms]
        done = await self._client.run(lambda r: self._begin_script([key], args, client=r))
        return done is not None

    async def _end(self, entries: list[Settle]) -> bool:
        async def run(r: Redis) -> Any:
            if len(entries) == 1:
                key, version, dec, drop = entries[0]
                return await self._end_script([key], [version, dec, int(drop), self._ttl_ms],
                                              client=r)
            async with r.pipeline(transaction=False) as pipe:
                for key, version, dec, drop in entries:
                    await self._end_script([key], [version, dec, int(drop), self._ttl_ms],
                                           client=pipe)
                return await pipe.execute()

        return await self._client.run(run) is not None

    async def _settle(self, entries: list[Settle]) -> None:
        """Apply ENDs now, or remember them for replay if Redis cannot take them."""
        if not entries:
            return
        if self._unsettled and not await self._ready():
            self._remember(entries)
            return
        try:
            ok = await self._end(entries)
        except BaseException:  # cancelled mid-call: replay later rather than lose them
            self._remember(entries)
            raise
        if not ok:
            self._remember(entries)

    async def _fill(self, key: str, version: StoredVersion, started: float) -> None:
        if self._clock() - started >= self._max_fill_age or not await self._ready():
            return  # too old to be trusted against the floor's lifetime, or Redis is away
        data = encode(version)
        if len(data) > self._max_entry_bytes:
            return
        args: list[bytes | int] = [version.version_id, data, self._ttl_ms, self._pending_ms]
        await self._client.run(lambda r: self._fill_script([key], args, client=r))

    # -- cached interactions -----------------------------------------------------------

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The current version: from Redis when cached, else from ``inner`` (then cached)."""
        key = self._key(resource_type, id)
        if await self._ready():
            # (the cast: redis-py < 8 types commands as "awaitable or not")
            raw = await self._client.run(lambda r: cast("Awaitable[Any]", r.hget(key, "d")))
            if isinstance(raw, bytes):
                hit = decode(resource_type, id, raw)
                if hit is not None:
                    return hit
        started = self._clock()
        version = await self._inner.read(resource_type, id)
        if version is not None:
            await self._fill(key, version, started)
        return version

    async def vread(self, resource_type: str, id: str, version_id: int) -> StoredVersion | None:
        """One version from history; versions never change, so they are cached as is."""
        if not self._cache_vread:
            return await self._inner.vread(resource_type, id, version_id)
        key = self._client.key("ver", f"{resource_type}/{id}/{version_id}")
        raw = await self._client.get(key) if self._client.available else None
        hit = decode(resource_type, id, raw) if raw is not None else None
        if hit is not None:
            return hit
        version = await self._inner.vread(resource_type, id, version_id)
        # None is not cached: that version may be written later.
        if version is not None and self._client.available:
            data = encode(version)
            if len(data) <= self._max_entry_bytes:
                await self._client.set(key, data, self._ttl_s)
        return version

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None,
                    index: dict[str, list[dict[str, Any]]] | None = None) -> WriteResult:
        """Write through ``inner``, invalidating before (BEGIN) and after the commit (END)."""
        return await self.write_through(self._inner, resource_type, id, content, method,
                                        if_match, index)

    async def write_through(self, repository: Repository, resource_type: str, id: str,
                            content: str | None, method: WriteMethod,
                            if_match: int | None = None,
                            index: dict[str, list[dict[str, Any]]] | None = None
                            ) -> WriteResult:
        """``write`` through ``repository`` (``inner``, or a scoped view of it, whose
        checks then apply) with this cache's invalidation."""
        key = self._key(resource_type, id)
        begun = await self._begin(key)
        try:
            result = await repository.write(resource_type, id, content, method, if_match,
                                            index)
        except BaseException as exc:
            if _certainly_unchanged(exc):
                await self._settle([(key, 0, int(begun), False)])
            elif not begun:  # it may have committed and nothing holds readers off: drop
                self._remember([(key, 0, 0, True)])
            # else: leave the writer counted; fills stay refused for pending_s
            raise
        version = result.version.version_id if result.version is not None else 0
        await self._settle([(key, version, int(begun), False)])
        return result

    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """A session of ``inner``'s transaction whose writes are settled after it ends."""
        return self.tracked_transaction(self._inner)

    def scoped(self, scope: AccessScope) -> Repository:
        """``inner`` seen through ``scope``, writes still invalidating this cache."""
        return ScopedView(self, self._inner.scoped(scope), scope)

    def explaining(self) -> AbstractAsyncContextManager[ExplainingStore]:
        """``inner``'s: searches are never cached."""
        return self._inner.explaining()

    @asynccontextmanager
    async def tracked_transaction(self, repository: Repository) -> AsyncIterator[Session]:
        """A session of ``repository``'s transaction whose writes are settled after it."""
        tracker: _TrackingSession | None = None
        body_done = False
        try:
            async with repository.transaction() as inner:
                tracker = _TrackingSession(inner, self)
                yield tracker
                body_done = True  # from here on, a failure is the COMMIT's: ambiguous
        except BaseException as exc:
            if tracker is not None:
                if not body_done:  # the body failed, so the transaction was rolled back
                    entries = [(k, 0, dec, False) for k, (_, dec) in tracker.writes.items()]
                    if isinstance(exc, Exception):
                        await self._settle(entries)
                    else:  # cancelled: no awaiting now, replay on the next use
                        self._remember(entries)
                else:
                    self._remember([(k, 0, 0, True) for k, (_, dec) in tracker.writes.items()
                                    if not dec])
            raise
        if tracker is not None:
            await self._settle([(k, v, dec, False) for k, (v, dec) in tracker.writes.items()])

    async def invalidate(self, items: Iterable[tuple[str, str, int | None]]) -> bool:
        """Drop the entries of (type, id, version or None) written behind the cache's back.

        For writers that bypass this class (the bulk importer). With a version, fills of
        older versions are refused afterwards too; False if Redis could not be reached
        (the invalidation is then replayed before this instance uses the cache again).
        """
        entries = [(self._key(t, i), v or 0, 0, True) for t, i, v in items]
        if not entries:
            return True
        ok = await self._end(entries)
        if not ok:
            self._remember(entries)
        return ok

    async def flush(self) -> bool:
        """Remove every cached resource and version of this namespace (SCAN + UNLINK).

        For after a database restore or a bulk load; False if Redis failed midway.
        """
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self._client.prefix)

        async def run(r: Redis) -> int:
            removed = 0
            for kind in ("res:*", "ver:*"):
                batch: list[Any] = []
                async for key in r.scan_iter(match=escaped + kind, count=1000):
                    batch.append(key)
                    if len(batch) >= 500:
                        removed += await r.unlink(*batch)
                        batch = []
                if batch:
                    removed += await r.unlink(*batch)
            return removed

        removed = await self._client.run(run, deadline=60.0)
        if removed is not None:
            log.info("flushed %d cache entries", removed)
        return removed is not None

    async def readiness(self) -> Readiness:
        """Delegated: Redis is optional, so it never makes the server unready."""
        return await self._inner.readiness()


class _TrackingSession(DelegatingSession[Session]):
    """A transaction's Session: writes are counted for END, everything else is delegated.

    Reads go to the transaction, never the cache: they must see its own writes.
    """

    def __init__(self, inner: Session, owner: CachedRepository) -> None:
        super().__init__(inner)
        self._owner = owner
        #: key -> [highest version written, writers counted by BEGIN]
        self.writes: dict[str, list[int]] = {}

    async def write(self, resource_type: str, id: str, content: str | None,
                    method: WriteMethod, if_match: int | None = None,
                    index: dict[str, list[dict[str, Any]]] | None = None) -> WriteResult:
        """BEGIN now (readers stop filling), END once the transaction has ended."""
        key = self._owner._key(resource_type, id)
        begun = await self._owner._begin(key)
        entry = self.writes.setdefault(key, [0, 0])
        entry[1] += int(begun)  # counted before the write so that a failure still uncounts
        result = await self._inner.write(resource_type, id, content, method, if_match, index)
        if result.version is not None:
            entry[0] = max(entry[0], result.version.version_id)
        return result


if TYPE_CHECKING:
    def _is_repository(cached: CachedRepository) -> Repository:
        """mypy checks here that it satisfies the protocol."""
        return cached
