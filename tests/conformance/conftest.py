"""Every conformance test runs twice: over plain HTTP, and with each request wrapped as
a one-entry Bundle (a ``batch``; a ``transaction`` when it writes) whose entry's answer
is turned back into a response. Both must pass the same assertions on status, the
headers a Bundle entry carries (ETag, Last-Modified, Location) and body, so an
interaction that works over HTTP works as an entry with the same answer.

Tests about the wire itself (media types, compression, request ids, operator endpoints,
Bundles themselves) are marked ``http_only`` and run once.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson
import pytest

#: Methods whose entries go in a transaction (a write's answer is the same in a batch).
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: HTTP request headers and the Bundle entry request element carrying each.
_CONDITIONS = {"if-match": "ifMatch", "if-none-match": "ifNoneMatch",
               "if-modified-since": "ifModifiedSince", "if-none-exist": "ifNoneExist"}


class BatchTransport(httpx.BaseTransport):
    """Sends each FHIR request as a one-entry Bundle through ``inner``."""

    def __init__(self, inner: httpx.BaseTransport, base: str) -> None:
        self._inner = inner
        self._base = base.rstrip("/")  # http://host:port/fhir

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        relative = url[len(self._base):].lstrip("/") if url.startswith(self._base) else None
        if relative is None or relative.split("?")[0] in ("", "_search") or (
                request.method == "POST" and relative.split("?")[0].endswith("/_search")):
            # the base itself (Bundles, system search forms) and POST _search forms
            return self._inner.handle_request(request)
        entry, raw = self._entry(request, relative)
        # A transaction resolves urn:uuid references against its entries: one that
        # names none is refused there, though HTTP stores it as written.
        kind = ("transaction" if request.method in _WRITES and b"urn:uuid:" not in raw
                else "batch")
        headers = {"content-type": "application/fhir+json",
                   "accept": "application/fhir+json"}
        if "prefer" in request.headers:
            headers["prefer"] = request.headers["prefer"]
        # The body goes in as written, so decimals keep their precision.
        entry_json = orjson.dumps(entry)
        if raw:
            entry_json = entry_json[:-1] + b',"resource":' + raw + b"}"
        bundle = (b'{"resourceType":"Bundle","type":"' + kind.encode() + b'","entry":['
                  + entry_json + b"]}")
        outer = httpx.Request("POST", self._base, headers=headers, content=bundle)
        answer = self._inner.handle_request(outer)
        answer.read()
        if answer.status_code != 200:
            return answer  # the Bundle as a whole failed (a transaction's error)
        body = json.loads(answer.content, parse_float=Decimal)
        return self._response(request, body["entry"][0], answer)

    def _entry(self, request: httpx.Request, relative: str) -> tuple[dict[str, Any], bytes]:
        """The entry's request element, and its resource as JSON text (or b"")."""
        entry_request: dict[str, Any] = {"method": request.method, "url": relative}
        for header, element in _CONDITIONS.items():
            if header in request.headers:
                entry_request[element] = request.headers[header]
        entry: dict[str, Any] = {"request": entry_request}
        content = request.read()
        media = request.headers.get("content-type", "").split(";")[0].strip()
        # R4: a JSON Patch entry carries a Binary (a FHIRPath Patch, Parameters, is JSON)
        if content and request.method == "PATCH" and media != "application/fhir+json":
            content = orjson.dumps({"resourceType": "Binary", "contentType": media,
                                    "data": base64.b64encode(content).decode()})
        return entry, content

    def _response(self, request: httpx.Request, entry: dict[str, Any],
                  outer: httpx.Response) -> httpx.Response:
        response = entry["response"]
        status = int(response["status"].split()[0])
        headers: dict[str, str] = {}
        if "location" in response:
            headers["location"] = urljoin(self._base + "/", response["location"])
        if "etag" in response:
            headers["etag"] = response["etag"]
        if "lastModified" in response:
            modified = datetime.fromisoformat(response["lastModified"].replace("Z", "+00:00"))
            headers["last-modified"] = format_datetime(modified, usegmt=True)
        content = b""
        resource = entry.get("resource", response.get("outcome"))
        if resource is not None:
            content = _dumps(resource)
            headers["content-type"] = outer.headers["content-type"]
        return httpx.Response(status, headers=headers, content=content, request=request)


@pytest.fixture(scope="session", params=["http", "batch"])
def client(request: pytest.FixtureRequest, server: str) -> Iterator[httpx.Client]:
    """A client of the test server's FHIR API (base ``/fhir``): plain HTTP, or every
    request wrapped as a one-entry Bundle."""
    base = f"{server}/fhir"
    if request.param == "http":
        with httpx.Client(base_url=base, timeout=30) as c:
            yield c
        return
    inner = httpx.HTTPTransport()
    with httpx.Client(base_url=base, timeout=30,
                      transport=BatchTransport(inner, base)) as c:
        yield c


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run ``http_only`` tests (and tests without ``client``) once."""
    for item in list(items):
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("client") != "batch":
            continue
        if item.get_closest_marker("http_only") is not None:
            items.remove(item)


def _dumps(value: Any) -> bytes:
    """JSON with decimals written as they were read."""
    def mark(v: Any) -> Any:
        if isinstance(v, Decimal):
            return f"\u0000{v}\u0000"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v
    text = json.dumps(mark(value), ensure_ascii=False, separators=(",", ":"))
    return _DECIMAL.sub(lambda m: m[1], text).encode()


_DECIMAL = re.compile(r'"\\u0000([^"\\]+)\\u0000"')
