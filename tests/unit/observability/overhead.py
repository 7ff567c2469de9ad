"""Per-request cost of ObservabilityMiddleware around a trivial ASGI app (not a test).

Run: ``.venv/bin/python -m tests.unit.observability.overhead [N]``; with
``PROMETHEUS_MULTIPROC_DIR`` set to an empty directory it measures multiprocess mode.
Prints microseconds per request: bare app, with metrics only (access log level off),
and with the JSON access log written to /dev/null.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sys
import time
from typing import Any, TextIO

import orjson
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from fhir_server.logs import JsonFormatter
from fhir_server.observability.context import RequestIdFilter
from fhir_server.observability.metrics import FhirMetrics
from fhir_server.observability.middleware import ObservabilityMiddleware

_ROUTE = Route("/fhir/{resource_type}/{id}", lambda request: None)
_CLAIMS = base64.urlsafe_b64encode(orjson.dumps({"client_id": "ward-app"})).rstrip(b"=")
_HEADERS = [(b"host", b"localhost"), (b"user-agent", b"bench"), (b"accept", b"*/*"),
            (b"authorization", b"Bearer eyJhbGciOiJub25lIn0." + _CLAIMS + b".sig")]
_START = {"type": "http.response.start", "status": 200,
          "headers": [(b"content-type", b"application/fhir+json")]}
_BODY = {"type": "http.response.body", "body": b"{}"}


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    # What Starlette's router leaves in the scope, then a tiny response.
    scope["route"] = _ROUTE
    scope["path_params"] = {"resource_type": "Patient", "id": "1"}
    await send(_START)
    await send(_BODY)


async def _receive() -> Message:
    return {"type": "http.request", "body": b""}


async def _send(message: Message) -> None:
    return None


async def _per_request_us(app: Any, n: int) -> float:
    # CPU time, best of 5: the machine may be shared, wall time would measure the others.
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(n):
            scope = {"type": "http", "method": "GET", "path": "/fhir/Patient/1",
                     "headers": _HEADERS}
            await app(scope, _receive, _send)
        best = min(best, time.process_time() - start)
    return best / n * 1e6


async def main(n: int, sink: TextIO) -> None:
    """Print the three measurements; the access log goes to ``sink``."""
    access = logging.getLogger("bench.access")
    access.propagate = False
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    access.addHandler(handler)
    wrapped = ObservabilityMiddleware(_app, metrics=FhirMetrics(), logger=access,
                                      resource_types=frozenset({"Patient"}))
    mode = "multiprocess" if wrapped.metrics.multiprocess_dir else "in-process"
    bare = await _per_request_us(_app, n)
    access.setLevel(logging.WARNING)
    quiet = await _per_request_us(wrapped, n)
    access.setLevel(logging.INFO)
    logged = await _per_request_us(wrapped, n)
    print(f"{mode}: bare app {bare:.2f} us/request; + middleware, no access log "
          f"{quiet - bare:.2f} us; + middleware with JSON access log {logged - bare:.2f} us")


if __name__ == "__main__":
    with open(os.devnull, "w") as devnull:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, devnull))
