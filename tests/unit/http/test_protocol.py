"""The bounded httptools protocol, driven through a recording transport (no server)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from fhir_server.errors import FhirError
from fhir_server.http.protocol import (
    LINGER_SECONDS,
    ConnectionLimits,
    FhirHttpToolsProtocol,
    refusal,
)
from fhir_server.settings import load_settings

LIMITS = ConnectionLimits(max_header_bytes=1024, header_timeout=0.1, body_timeout=0.1)


class Transport(asyncio.Transport):
    """What the protocol writes, and whether it closed, half-closed or paused."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = self.eof = self.paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.eof, "written after write_eof"
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 3000)}.get(
            name, default)


Asgi = Callable[[Any, Any, Any], Awaitable[None]]


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """The coroutine test run in an event loop of its own."""
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))
    return run


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def connection(app: Asgi = ok, limits: ConnectionLimits = LIMITS, **config: Any,
               ) -> tuple[FhirHttpToolsProtocol, Transport]:
    settings = Config(app, log_config=None, **config)
    settings.load()
    protocol = FhirHttpToolsProtocol(settings, ServerState(), {},
                                     _loop=asyncio.get_running_loop(), limits=limits)
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


def answer(transport: Transport) -> tuple[bytes, dict[str, Any]]:
    head, _, body = transport.written.partition(b"\r\n\r\n")
    issue: dict[str, Any] = orjson.loads(body)["issue"][0]
    return head, issue


def test_refusal_is_a_complete_closing_operation_outcome() -> None:
    error = FhirError("busy", status=503, code="transient", headers={"Retry-After": "1"})
    assert refusal(error) == (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"content-type: application/fhir+json; charset=utf-8\r\ncontent-length: 106\r\n"
        b"connection: close\r\nretry-after: 1\r\n\r\n"
        b'{"resourceType":"OperationOutcome","issue":[{"severity":"error",'
        b'"code":"transient","diagnostics":"busy"}]}')


def test_limits_come_from_the_settings() -> None:
    settings = load_settings({"MAX_HEADER_BYTES": "2048", "HEADER_TIMEOUT_SECONDS": "3",
                              "BODY_TIMEOUT_SECONDS": "4.5"}, env_file=None)
    assert ConnectionLimits.of(settings) == ConnectionLimits(2048, 3.0, 4.5)


@in_loop
async def test_a_head_past_the_limit_is_431_and_no_more_is_parsed() -> None:
    protocol, transport = connection()
    protocol.data_received(b"GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n")
    protocol.data_received(b"X-Big: " + b"a" * 5000)
    head, issue = answer(transport)
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close" in head
    assert issue["code"] == "too-long"
    assert protocol.head_bytes == 1024  # the parser was fed up to the limit, no further
    assert transport.eof and not transport.closed  # lingering: reading what still comes
    written = transport.written
    protocol.data_received(b"a" * 100_000)
    assert transport.written == written
    await asyncio.sleep(LINGER_SECONDS + 0.1)
    assert transport.closed


@in_loop
async def test_a_request_line_past_the_limit_is_414() -> None:
    protocol, transport = connection()
    protocol.data_received(b"GET /fhir/Patient?name=" + b"a" * 2000)
    head, issue = answer(transport)
    assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert "POST [base]/[type]/_search" in issue["diagnostics"]


@in_loop
async def test_a_head_in_many_pieces_within_the_limit_is_served() -> None:
    protocol, transport = connection()
    request = b"GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\nX-A: " + b"a" * 900 + \
              b"\r\n\r\n"
    for i in range(0, len(request), 7):
        protocol.data_received(request[i:i + 7])
    await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 200 OK\r\n")
    # the next request on the connection has a head budget of its own
    transport.written = b""
    protocol.data_received(request)
    await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 200 OK\r\n")


@in_loop
async def test_a_head_not_complete_in_time_is_408() -> None:
    protocol, transport = connection()
    protocol.data_received(b"GET /fhir/metadata HTTP/1.1\r\n")
    await asyncio.sleep(0.05)
    assert transport.written == b""
    await asyncio.sleep(0.1)
    head, issue = answer(transport)
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert issue["code"] == "timeout"


@in_loop
async def test_a_connection_that_sends_nothing_is_closed_silently() -> None:
    _, transport = connection()
    await asyncio.sleep(0.15)
    assert transport.closed and transport.written == b""


@in_loop
async def test_a_stalled_body_is_408_and_the_app_reads_a_disconnect() -> None:
    received: list[dict[str, Any]] = []

    async def reader(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    protocol, transport = connection(reader)
    protocol.data_received(b"PUT /fhir/Patient/a HTTP/1.1\r\nHost: localhost\r\n"
                           b"Content-Length: 20\r\n\r\n0123456789")
    await asyncio.sleep(0.05)
    protocol.data_received(b"01234")  # a chunk in time: the clock starts again
    await asyncio.sleep(0.07)
    assert transport.written == b""
    await asyncio.sleep(0.1)
    head, issue = answer(transport)
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert "BODY_TIMEOUT_SECONDS" in issue["diagnostics"]
    assert [m["type"] for m in received][-1] == "http.disconnect"
    assert b"201" not in transport.written  # the app's answer went nowhere


@in_loop
async def test_waiting_on_the_app_is_not_a_stalled_body() -> None:
    protocol, transport = connection()
    protocol.data_received(b"PUT /fhir/Patient/a HTTP/1.1\r\nHost: localhost\r\n"
                           b"Content-Length: 20\r\n\r\n0123456789")
    protocol.flow.pause_reading()  # what uvicorn does while the app has not read
    await asyncio.sleep(0.25)
    assert transport.written.startswith(b"HTTP/1.1 200 OK\r\n")  # `ok` answered, no 408
    assert b"408" not in transport.written


@pytest.mark.parametrize(("path", "status"), [(b"/fhir/metadata", b"503"),
                                              (b"/api/v1/health", b"200")])
@in_loop
async def test_past_max_connections_a_503_except_liveness(path: bytes,
                                                          status: bytes) -> None:
    protocol, transport = connection(limit_concurrency=1)
    assert protocol.limit_concurrency is None  # uvicorn's own (plain text) check is off
    protocol.data_received(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 " + status)
    if status == b"503":
        head, issue = answer(transport)
        assert b"retry-after: 1" in head and b"connection: close" in head
        assert issue["code"] == "transient" and "MAX_CONNECTIONS" in issue["diagnostics"]


@in_loop
async def test_what_the_parser_refuses_is_a_400_operation_outcome() -> None:
    protocol, transport = connection()
    protocol.data_received(b"BREW /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head, issue = answer(transport)
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert issue["code"] == "structure"
