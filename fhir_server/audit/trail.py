"""One HTTP request's audit trail: which AuditEvents it owes, and when they are stored.

The adapter opens a trail per ``/fhir`` request (:meth:`Auditor.begin`) and closes it
before the response is sent (:meth:`AuditTrail.finish`); the router runs every
interaction inside :meth:`AuditTrail.interaction` (the request itself and each Bundle
entry: BALP's patterns are per RESTful interaction, so each entry gets its own event,
with its own subtype, entities and patient, and the Bundle gets one too, joined to them
by the request id). What each event is follows from how the interaction ended:

- a write that succeeded: its event was inserted in the write's own transaction (by
  :meth:`AuditTrail.written`, called by storage), so nothing more is owed; if an
  enclosing transaction Bundle fails afterwards, those events were rolled back with the
  writes and are recorded again as failures;
- anything else (reads, searches, refusals, errors): an event is queued, and the
  response waits until the group-commit writer has stored it. If it cannot be stored
  the answer is a 503: no answer leaves without its event, except a write's, whose
  event is committed already.

"Stored" means staged (``audit_staging``, durable): the :mod:`.mover` makes staged
events searchable resources within about a second.
- a request refused before any route ran (401 from the adapter, 404/405 for no route,
  406, 413, 429) gets its event from what the adapter knew (address, method, path).

The CapabilityStatement (``GET /metadata``) is not audited: it is public, the same for
everyone and names no patient data.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg_pool import AsyncConnectionPool

from fhir_server.api.messages import FhirRequest, FhirResponse, error_response
from fhir_server.audit import builder, hook, patients
from fhir_server.audit.builder import Facts, Target
from fhir_server.audit.index import EventIndexer
from fhir_server.audit.mover import Mover
from fhir_server.audit.writer import GroupWriter, Record, insert
from fhir_server.errors import FhirError, ServiceUnavailable
from fhir_server.search.index import IndexBuilder
from fhir_server.search.registry import Registry
from fhir_server.search.text import DEFAULT_CONFIG
from fhir_server.service.access import RequestContext
from fhir_server.service.repository import StoredVersion, WriteResult

if TYPE_CHECKING:
    from fhir_server.api.router import Route

#: the trail of the request being served (None: not audited)
CURRENT: ContextVar[AuditTrail | None] = ContextVar("fhir_audit_trail", default=None)
#: interactions whose query is recorded as BALP's query entity
_QUERIES = ("search", "history")


def current() -> AuditTrail | None:
    """The trail of the request being served, if it is audited."""
    return CURRENT.get()


class Auditor:
    """The audit trail's machinery, built once per process (``AUDIT=true``)."""

    def __init__(self, pool: AsyncConnectionPool, indexer: IndexBuilder,
                 registry: Registry | None = None, bases: Sequence[str] = (),
                 text_config: str = DEFAULT_CONFIG,
                 report: Callable[[int, float], None] | None = None) -> None:
        self.indexer = EventIndexer(indexer, registry, bases, text_config)
        self.mover = Mover(pool, self.indexer, report=report)
        self.writer = GroupWriter(pool, staged=self.mover.staged)

    def start(self) -> None:
        """Start the mover (the writer starts with the first event)."""
        self.mover.start()

    def begin(self, context: RequestContext, base: str, method: str, path: str,
              query: str, address: str | None) -> AuditTrail:
        """Open the trail of one request (current until :meth:`AuditTrail.end`)."""
        trail = AuditTrail(self, context, base, method, path, query, address)
        trail.tokens = (CURRENT.set(trail), hook.OBSERVER.set(trail))
        return trail

    def record(self, facts: Facts) -> Record:
        """An event with a new id (indexed later, by the mover)."""
        id = str(uuid.uuid4())
        return Record(id, builder.build(facts, id))

    async def close(self) -> None:
        """Store what is queued, stop the writer, then move what is staged (best
        effort: what is left stays staged for the next start)."""
        await self.writer.stop()
        await self.mover.stop()


@dataclass(eq=False)
class _Frame:
    """One interaction in progress: the request itself or a Bundle entry."""

    route: Route
    params: dict[str, str]
    request: FhirRequest
    #: events stored in this interaction's write transactions
    written: list[Record] = field(default_factory=list)
    #: events stored by its entries' writes (rolled back if this one fails)
    children: list[Record] = field(default_factory=list)


class AuditTrail:
    """What one request owes the audit trail (see the module's docstring)."""

    def __init__(self, auditor: Auditor, context: RequestContext, base: str, method: str,
                 path: str, query: str, address: str | None) -> None:
        self.auditor = auditor
        self.context = context
        self.base = base
        self.method = method
        self.path = path
        self.query = query
        self.address = address
        self.route: Route | None = None
        self.params: dict[str, str] = {}
        self.pending: list[Record] = []
        #: write events waiting for their transaction's flush (see ``written``)
        self.held: list[Record] = []
        self.frames: list[_Frame] = []
        #: whether the router ran the request's own interaction, and whether that
        #: interaction's event is committed already (a write's)
        self.handled = False
        self.committed = False
        self.tokens: tuple[Token[Any], ...] = ()

    def matched(self, route: Route, params: dict[str, str]) -> None:
        """The adapter found the request's route."""
        self.route, self.params = route, params

    async def interaction(self, route: Route, params: dict[str, str], request: FhirRequest,
                          run: Callable[[], Awaitable[FhirResponse]]) -> FhirResponse:
        """Run one interaction and note the event it owes."""
        if route.interaction == "capabilities":
            return await run()
        frame = _Frame(route, params, request)
        top = not self.frames
        self.frames.append(frame)
        try:
            response = await run()
        except FhirError as exc:
            self.frames.pop()
            self._close(frame, top, exc.status, exc.diagnostics, None)
            raise
        except Exception:
            self.frames.pop()
            self._close(frame, top, 500, "internal server error", None)
            raise
        self.frames.pop()
        self._close(frame, top, response.status, _diagnostics(response), response)
        return response

    def _close(self, frame: _Frame, top: bool, status: int, why: str | None,
               response: FhirResponse | None) -> None:
        parent = self.frames[-1] if self.frames else None
        if top:
            self.handled = True
        if status < 400:
            if frame.written:
                self.committed = top
            else:
                self.pending.append(self.auditor.record(
                    self._facts(frame, status, response.version if response else None,
                                why, response)))
            if parent is not None:
                parent.children.extend(frame.written + frame.children)
            return
        self.pending.append(self.auditor.record(self._facts(frame, status, None, why,
                                                            response)))
        for done in frame.children:  # rolled back with this interaction's transaction
            event = builder.failed(done.event, status, why or str(status))
            id = str(uuid.uuid4())
            event["id"] = id
            self.pending.append(Record(id, event))

    async def written(self, conn: Any, resource_type: str, id: str, method: str,
                      result: WriteResult, hold: bool = False) -> None:
        """Storage wrote a resource: stage its event in the same transaction (with
        ``hold``, at :meth:`flush`: one statement for a transaction's writes instead of
        one round trip each)."""
        if not self.frames:
            return
        frame = self.frames[-1]
        version = result.version
        status = 201 if result.outcome == "created" else 200
        record = self.auditor.record(self._facts(
            frame, status, version, None, None, Target(resource_type, id)))
        frame.written.append(record)
        if hold:
            self.held.append(record)
            return
        await insert(conn, [record])
        self.auditor.mover.staged(1)

    async def flush(self, conn: Any) -> None:
        """Stage the held events on ``conn``, in its transaction, before it commits."""
        held, self.held = self.held, []
        await insert(conn, held)
        self.auditor.mover.staged(len(held))

    def _facts(self, frame: _Frame, status: int, version: StoredVersion | None,
               why: str | None, response: FhirResponse | None,
               fallback: Target | None = None) -> Facts:
        route, params, request = frame.route, frame.params, frame.request
        caller = request.context.caller
        rtype = params.get("resource_type")
        content: str | None = None
        if version is not None:
            target = Target(version.resource_type, version.id, version.version_id)
            content = version.content
        elif fallback is not None:
            target = fallback
        else:
            target = Target(rtype or params.get("compartment", "") or "",
                            params.get("id") if rtype else None)
        found = patients.merged(
            [caller.patient] if caller is not None and caller.patient else [],
            patients.of_path(params),
            patients.of_text(content, target.resource_type) if content else [],
            patients.of_query(rtype, _pairs(request))
            if route.interaction.startswith(_QUERIES) else [])
        query = None
        if route.interaction.startswith(_QUERIES):
            query = request.query
            if request.method == "POST" and request.body:
                query = request.body.decode("utf-8", "replace")
        return Facts(route.interaction, status, request.context.request_id, self.base,
                     caller=caller, address=self.address,
                     targets=[target] if target.resource_type else [], patients=found,
                     query=query, outcome_desc=why,
                     operation=route.operation.name if route.operation else None,
                     bundle_type=_bundle_type(request, response))

    async def finish(self, answer: FhirResponse) -> FhirResponse:
        """Store what the request owes; the answer to send (503 when that failed)."""
        route = self.route
        if not self.handled and not (route is not None
                                     and route.interaction == "capabilities"):
            self.pending.append(self.auditor.record(self._refused(answer)))
        try:
            await self.auditor.writer.store(self.pending)
        except Exception:
            if self.committed:
                return answer  # the write's own event is committed with it
            return error_response(ServiceUnavailable(
                "the audit trail could not record this request, so it is not answered",
                headers={"Retry-After": "1"}))
        finally:
            self.pending = []
        return answer

    def _refused(self, answer: FhirResponse) -> Facts:
        """The event of a request no route ran (refused or failed before)."""
        route, params = self.route, self.params
        interaction = route.interaction if route is not None else _guess(self.method,
                                                                         self.path)
        rtype = params.get("resource_type") or (self.path.split("/")[0] or None)
        rid = params.get("id")
        caller = self.context.caller
        return Facts(interaction, answer.status, self.context.request_id, self.base,
                     caller=caller, address=self.address,
                     targets=[Target(rtype, rid)] if rtype else [],
                     patients=patients.of_path(params),
                     query=self.query if interaction.startswith(_QUERIES) else None,
                     outcome_desc=_diagnostics(answer))

    def end(self) -> None:
        """Close the trail (the context variables are what they were before)."""
        for token in reversed(self.tokens):
            token.var.reset(token)
        self.tokens = ()


def _pairs(request: FhirRequest) -> list[tuple[str, str]]:
    try:
        return request.pairs
    except FhirError:
        return []


def _diagnostics(response: FhirResponse) -> str | None:
    """The first issue's diagnostics of an error answer."""
    if response.status < 400 or not response.outcome:
        return None
    issues = response.outcome.get("issue") or [{}]
    text = issues[0].get("diagnostics")
    return text if isinstance(text, str) else None


def _bundle_type(request: FhirRequest, response: FhirResponse | None) -> str | None:
    """``batch`` or ``transaction`` for a Bundle posted to the base."""
    if request.path or request.method != "POST":
        return None
    body = response.body if response is not None else None
    if isinstance(body, dict) and isinstance(body.get("type"), str):
        return str(body["type"]).removesuffix("-response")
    resource = request.resource
    if isinstance(resource, dict):
        return str(resource.get("type"))
    raw = request.body or b""
    return "transaction" if b'"transaction"' in raw else "batch"


def _guess(method: str, path: str) -> str:
    """The interaction a request that matched no route was probably meant to be."""
    depth = len([s for s in path.split("/") if s])
    if method in ("GET", "HEAD"):
        return "read" if depth == 2 else "search-type" if depth == 1 else "search-system"
    if method == "POST":
        return "create" if depth == 1 else "transaction/batch" if depth == 0 else "operation"
    return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "operation")
