"""uvicorn's httptools protocol, bounded per connection, with its refusals as FHIR answers.

A request the HTTP parser refuses never reaches the app, so uvicorn would answer it
itself with a text/plain 400; here every refusal is an OperationOutcome. On top of the
parser's refusals (a URL past 65,535 bytes, which httptools keeps in 16 bits, is a 414
with a hint to ``POST _search`` instead) this protocol bounds what one connection may
cost before the app sees it:

- the request head (request line and headers) is counted as it arrives and refused
  once it passes ``MAX_HEADER_BYTES`` (431, or 414 while still in the request line),
  before httptools buffers any more of it;
- the head must be complete within ``HEADER_TIMEOUT_SECONDS`` of its first byte (or of
  the connection) and the body must not pause longer than ``BODY_TIMEOUT_SECONDS``
  between chunks: 408, the connection closed, and the app reads a disconnect, never
  half a body;
- past ``MAX_CONNECTIONS`` (uvicorn's ``limit_concurrency``) a request is answered 503
  with ``Retry-After``; liveness is exempt, so that a flood of connections does not get
  the process restarted.
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from fhir_server.errors import FhirError, ServiceUnavailable
from fhir_server.settings import Settings, load_settings

#: The longest URL httptools can split into path and query.
MAX_URL_BYTES = 65_535
#: Seconds a refused connection's further input is read and dropped before it is closed:
#: closing with unread input would reset the connection and lose the answer.
LINGER_SECONDS = 2.0
#: The liveness probe, answered even past MAX_CONNECTIONS.
LIVENESS_PATH = b"/api/v1/health"
#: RFC 9110's reason phrases where Python's (before 3.13) are older ones.
_REASONS = {414: "URI Too Long"}


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection may take: head bytes, seconds for the head and per body gap."""

    max_header_bytes: int
    header_timeout: float
    body_timeout: float

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        """The limits ``settings`` configure."""
        return cls(settings.max_header_bytes, settings.header_timeout_seconds,
                   settings.body_timeout_seconds)


@cache
def configured_limits() -> ConnectionLimits:
    """The limits from the environment (each worker process reads them once)."""
    return ConnectionLimits.of(load_settings())


def refusal(error: FhirError) -> bytes:
    """A complete HTTP/1.1 response carrying ``error`` as an OperationOutcome, closing."""
    body = orjson.dumps(error.operation_outcome())
    reason = _REASONS.get(error.status) or http.HTTPStatus(error.status).phrase
    lines = [f"HTTP/1.1 {error.status} {reason}",
             "content-type: application/fhir+json; charset=utf-8",
             f"content-length: {len(body)}", "connection: close",
             *(f"{name.lower()}: {value}" for name, value in error.headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def url_too_long(size: int, limit: int) -> FhirError:
    """414, with the way around it."""
    return FhirError(f"the URL is {size:,} bytes or more, past the {limit:,} this server "
                     "takes; send a long search as POST [base]/[type]/_search with a form "
                     "body", status=414, code="too-long")


class FhirHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn --http`` for this server: bounded heads, bodies and connections."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None,
                 limits: ConnectionLimits | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits or configured_limits()
        # Checked here instead of by uvicorn: its 503 is plain text, and counts liveness.
        self.max_connections = self.limit_concurrency
        self.limit_concurrency = None
        self.fhir_app = self.app
        #: bytes of the current head so far; whether its request line has ended
        self.head_bytes = 0
        self.line_done = False
        self.in_head = True
        self.head_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.last_body = 0.0
        self.lingering = False

    # --- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock of the first head at once: a silent connection is closed too."""
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clocks, then uvicorn's bookkeeping."""
        self._stop_head_clock()
        self._stop_body_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, at most up to the head limit while a head is being read."""
        if self.lingering:
            return  # the answer is sent: the rest is read only to be dropped
        while data and self.in_head:
            self._start_head_clock()
            room = self.limits.max_header_bytes - self.head_bytes
            if room <= 0:
                self._refuse_head()
                return
            piece, data = data[:room], data[room:]
            self.head_bytes += len(piece)
            if not self.line_done and b"\n" in piece:
                self.line_done = True
            super().data_received(piece)
            if self.transport.is_closing() or self.lingering:
                return
        if data:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """The parser's refusal: 414 for an over-long URL, 400 otherwise."""
        url = getattr(self, "url", b"")
        if len(url) > MAX_URL_BYTES:
            self._refuse(url_too_long(len(url), MAX_URL_BYTES))
        else:
            self._refuse(FhirError("the request is not valid HTTP/1.1", status=400,
                                   code="structure"))

    # --- parser callbacks ---------------------------------------------------------------

    def on_headers_complete(self) -> None:
        """The head is in: its clock stops, the body's starts; over capacity, a 503."""
        self.in_head = False
        self._stop_head_clock()
        self.app = self._busy if self._over_capacity() else self.fhir_app
        super().on_headers_complete()
        self.last_body = self.loop.time()
        self.body_timer = self.loop.call_later(self.limits.body_timeout, self._body_waited)

    def on_body(self, body: bytes) -> None:
        """A body chunk: the pause clock starts again."""
        self.last_body = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        """The body is in; what comes next is a new head."""
        self._stop_body_clock()
        self.in_head, self.head_bytes, self.line_done = True, 0, False
        super().on_message_complete()

    # --- limits -------------------------------------------------------------------------

    def _over_capacity(self) -> bool:
        if self.max_connections is None or self.url.split(b"?", 1)[0] == LIVENESS_PATH:
            return False
        return (len(self.connections) >= self.max_connections
                or len(self.tasks) >= self.max_connections)

    async def _busy(self, scope: Any, receive: Any, send: Any) -> None:
        """The app past MAX_CONNECTIONS: 503 with Retry-After, the connection closed."""
        error = ServiceUnavailable(
            f"this server has {self.max_connections:,} connections open per worker, its "
            "limit (MAX_CONNECTIONS); try again shortly", headers={"Retry-After": "1"})
        head, _, body = refusal(error).partition(b"\r\n\r\n")
        headers = [tuple(line.split(b": ", 1)) for line in head.split(b"\r\n")[1:]]
        await send({"type": "http.response.start", "status": error.status,
                    "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _refuse_head(self) -> None:
        limit = self.limits.max_header_bytes
        if not self.line_done:
            self._refuse(url_too_long(self.head_bytes, min(limit, MAX_URL_BYTES)))
            return
        self._refuse(FhirError(f"the request line and headers are over {limit:,} bytes, "
                               "this server's limit (MAX_HEADER_BYTES)", status=431,
                               code="too-long"))

    def _start_head_clock(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.limits.header_timeout,
                                                   self._head_waited)

    def _stop_head_clock(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _stop_body_clock(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def _head_waited(self) -> None:
        """HEADER_TIMEOUT_SECONDS passed without a complete head."""
        self.head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # a pipelined head arriving slowly behind a running request: end after it
            self.cycle.keep_alive = False
        elif self.head_bytes == 0:
            self.transport.close()  # nothing was asked: nothing to answer
        else:
            self._refuse(FhirError(
                f"the request head was not complete within {self.limits.header_timeout:g} "
                "seconds (HEADER_TIMEOUT_SECONDS)", status=408, code="timeout"))

    def _body_waited(self) -> None:
        """The body paused; past BODY_TIMEOUT_SECONDS the request fails."""
        self.body_timer = None
        waited = self.loop.time() - self.last_body
        if self.flow.read_paused or waited < self.limits.body_timeout:
            # the app has not taken what came (not the client's pause), or a chunk came
            self.body_timer = self.loop.call_later(
                max(0.0, self.limits.body_timeout - waited), self._body_waited)
            return
        cycle = self.cycle
        if cycle is None or self.transport.is_closing():
            return
        if cycle.response_started:
            self.transport.close()  # the answer is under way: only closing is left
            return
        cycle.disconnected = True  # the app now reads a disconnect, never half a body
        cycle.message_event.set()
        self._refuse(FhirError(
            f"the request body paused for more than {self.limits.body_timeout:g} seconds "
            "(BODY_TIMEOUT_SECONDS)", status=408, code="timeout"))

    def _refuse(self, error: FhirError) -> None:
        """Answer ``error``, then close after a linger (at once while a response of an
        earlier request is under way: nothing may be written into it)."""
        self._stop_head_clock()
        self._stop_body_clock()
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete \
                and not self.cycle.disconnected:
            self.transport.close()
            return
        self.transport.write(refusal(error))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.lingering = True
        self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
