"""The worker of Bulk Data exports: claims export jobs and writes their NDJSON files.

Each type is walked by keyset pages of the ordinary search (so the caller's scope, the
``_typeFilter`` and the population apply as in any search), and the stored JSON text of
each resource becomes one line as it is, never parsed again. A page goes to the blob
store as soon as it is read, so memory holds one page whatever the export's size. A
file (``EXPORT_FILE_LINES`` lines at most) is the unit of progress: when it is stored,
the job's position moves past it in the same statement that records it. A worker that
dies loses at most the file it was writing (its pending object is swept); the next
worker to claim the job after the lease expires starts again from the last file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_server.blobs.store import BlobStore, StoredBlob
from fhir_server.search.base import ParseContext
from fhir_server.search.request import SearchRequest
from fhir_server.service import export
from fhir_server.service.access import AccessScope
from fhir_server.service.context import ServiceContext
from fhir_server.service.repository import Job, JobStore, Repository

log = logging.getLogger(__name__)

#: an export file is never refused for its size (its lines are bounded instead)
_NO_SIZE_LIMIT = 1 << 62

#: the AccessScope of granted scopes and a launch patient (``auth.scopes.access_scope``)
ScopeOf = Callable[[str, str | None], AccessScope]


class _Stopped(Exception):
    """The job was cancelled or taken over while a file was being written."""


@dataclass
class _File:
    """What one file's writing has reached."""

    cursor: str | None
    count: int = 0
    #: the type has no more pages after this file
    last: bool = False


@dataclass
class ExportRunner:
    """Claims and runs export jobs, one at a time, with ``scope_of`` rebuilding each
    job's access scope from the scopes stored with it."""

    ctx: ServiceContext
    jobs: JobStore
    blobs: BlobStore
    scope_of: ScopeOf
    poll_seconds: float = 1.0

    async def run_one(self) -> bool:
        """Claim and run one export to its end; False when there was none."""
        settings = self.ctx.settings
        job = await self.jobs.claim(export.KIND, settings.export_lease_seconds)
        if job is None:
            return False
        try:
            await self._run(job)
        except _Stopped:
            log.info("export job %s was cancelled or taken over", job.id)
        except Exception as exc:  # a failed job must not kill the runner
            log.exception("export job %s failed", job.id)
            await self.jobs.finish(job.id, "failed", str(exc)[:1000])
        return True

    def _repository(self, params: dict[str, Any]) -> Repository:
        granted = params.get("granted")
        if granted is None:
            return self.ctx.repository
        return self.ctx.repository.scoped(self.scope_of(str(granted), params.get("patient")))

    async def _run(self, job: Job) -> None:
        params = job.params
        request = export.request_of(params)
        repository = self._repository(params)
        pc = ParseContext(tuple(params.get("bases") or ()), datetime.now(UTC),
                          self.ctx.search.expand_valueset,
                          subsumption=self.ctx.search.subsumption)
        owners = (await export.group_members(repository, request.group_id)
                  if request.group_id is not None else None)
        position: dict[str, Any] = dict(params.get("position") or {"index": 0,
                                                                   "cursor": None})
        outputs: list[dict[str, Any]] = list(params.get("outputs") or [])
        processed = sum(int(o["count"]) for o in outputs)
        while position["index"] < len(request.types):
            rtype = request.types[position["index"]]
            if owners == ():  # a Group without patients has nothing to export
                found, state = None, _File(None, last=True)
            else:
                search = export.search(self.ctx, request, rtype, pc, owners)
                found, state = await self._file(job, repository, search,
                                                position.get("cursor"), processed)
            after = ({"index": position["index"] + 1, "cursor": None} if state.last
                     else {"index": position["index"], "cursor": state.cursor})
            output = None
            if found is not None:
                number = sum(1 for o in outputs if o["type"] == rtype) + 1
                output = {"type": rtype, "name": export.file_name(rtype, number),
                          "key": found.key, "size": found.size, "count": state.count}
                outputs.append(output)
                processed += state.count
            if not await self.jobs.record_output(job.id, position, output, after, processed,
                                                 self.ctx.settings.export_lease_seconds):
                raise _Stopped
            position = after
            await asyncio.sleep(0)  # let requests run between files
        await self.jobs.finish(job.id, "done")
        log.info("export job %s done: %d resources", job.id, processed)

    async def _file(self, job: Job, repository: Repository, search: SearchRequest,
                    cursor: str | None, processed: int) -> tuple[StoredBlob | None, _File]:
        """Write the next file of a type from ``cursor``: the stored object (None when
        nothing is left) and where it ended."""
        settings = self.ctx.settings
        state = _File(cursor)
        search.cursor = cursor
        first = await repository.search(search, min(settings.export_batch_size,
                                                    settings.export_file_lines))
        if not first.rows:
            state.last = True
            return None, state

        async def lines() -> AsyncIterator[bytes]:
            page = first
            while True:
                # stored JSON text as it is: one resource per line
                yield ("\n".join(row.version.content or "" for row in page.rows)
                       + "\n").encode()
                state.count += len(page.rows)
                if page.next_cursor is None:
                    state.last = True
                    return
                state.cursor = page.next_cursor
                left = settings.export_file_lines - state.count
                if left <= 0:
                    return
                if not await self.jobs.renew(job.id, processed + state.count,
                                             settings.export_lease_seconds):
                    raise _Stopped
                search.cursor = state.cursor
                page = await repository.search(search, min(settings.export_batch_size, left))
                if not page.rows:
                    state.last = True
                    return

        return await self.blobs.put(lines(), _NO_SIZE_LIMIT), state

    async def loop(self) -> None:
        """Forever: run queued exports, sleep a little."""
        while True:
            try:
                while await self.run_one():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away; try again later
                log.warning("export jobs: database unavailable", exc_info=True)
            await asyncio.sleep(self.poll_seconds)
