"""Every conformance test runs twice: over plain HTTP, and with each request wrapped as
a one-entry Bundle (a ``batch``; a ``transaction`` when it writes) whose entry's answer
is turned back into a response. Both must pass the same assertions on status, the
headers a Bundle entry carries (ETag, Last-Modified, Location) and body, so an
interaction that works over HTTP works as an entry with the same answer.

Tests about the wire itself (media types, compression, request ids, operator endpoints,
Bundles themselves) are marked ``http_only`` and run once.

The suite runs against our own server, started for the session, or against any
deployed FHIR R4 server: ``pytest tests/conformance --base-url https://host/fhir
[--token TOKEN]``. There, a test marked ``requires(...)`` (see ``capability.py``)
skips, naming what is missing, when the target's CapabilityStatement (read once per
session) does not advertise it; a test that needs the server's internals (the
database, its settings, a server of its own, the root outside ``/fhir``) is in-process
only: marked ``in_process``, or found so by the fixtures it uses, it skips there.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson
import pytest

from tests.conformance.capability import unmet

#: Methods whose entries go in a transaction (a write's answer is the same in a batch).
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: HTTP request headers and the Bundle entry request element carrying each.
_CONDITIONS = {"if-match": "ifMatch", "if-none-match": "ifNoneMatch",
               "if-modified-since": "ifModifiedSince", "if-none-exist": "ifNoneExist"}


_HERE = Path(__file__).resolve().parent
#: Fixtures that reach past the FHIR API of the server under test: a test using one
#: (directly or through another fixture) runs only against our in-process server.
INTERNAL_FIXTURES = frozenset({"server", "root_client", "database_url", "migrated_url",
                               "scratch_url", "api_schema"})


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "the conformance suite's target")
    group.addoption("--base-url", default=None, metavar="URL",
                    help="run tests/conformance against this FHIR base (e.g. "
                         "https://host/fhir) instead of an in-process server")
    group.addoption("--token", default=None, metavar="TOKEN",
                    help="a Bearer token sent with every request to --base-url")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(operation=, interaction=, search=, "
                            "format=, patch_format=): skipped when the target's "
                            "CapabilityStatement does not advertise it")
    config.addinivalue_line("markers", "in_process: needs the server's internals; "
                            "skipped against --base-url")


def _remote(config: pytest.Config) -> str | None:
    value = config.getoption("base_url", default=None)
    return str(value).rstrip("/") if value else None


@pytest.fixture(scope="session")
def fhir_base(request: pytest.FixtureRequest) -> str:
    """The FHIR base under test: ``--base-url``, else our in-process server's."""
    remote = _remote(request.config)
    if remote:
        return remote
    return f"{request.getfixturevalue('server')}/fhir"


@pytest.fixture(scope="session")
def auth_headers(request: pytest.FixtureRequest) -> dict[str, str]:
    """The Authorization header of ``--token`` (none in process: auth is off there)."""
    token = request.config.getoption("token", default=None)
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture(scope="session")
def capability_statement(fhir_base: str, auth_headers: dict[str, str]) -> dict[str, Any]:
    """The target's CapabilityStatement, read once per session."""
    answer = httpx.get(f"{fhir_base}/metadata", headers={
        "Accept": "application/fhir+json", **auth_headers}, timeout=30)
    answer.raise_for_status()
    return dict(answer.json())


@pytest.fixture(autouse=True)
def _capabilities_required(request: pytest.FixtureRequest) -> None:
    """Skip a ``requires(...)`` test that the target does not advertise."""
    markers = list(request.node.iter_markers("requires"))
    if not markers:
        return
    statement = request.getfixturevalue("capability_statement")
    missing = [m for marker in markers for m in unmet(statement, marker.kwargs)]
    if missing:
        pytest.skip(f"the server does not advertise {', '.join(missing)} in its "
                    "CapabilityStatement")


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
        for name in ("prefer", "authorization"):
            if name in request.headers:
                headers[name] = request.headers[name]
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
def client(request: pytest.FixtureRequest, fhir_base: str,
           auth_headers: dict[str, str]) -> Iterator[httpx.Client]:
    """A client of the FHIR API under test: plain HTTP, or every request wrapped as a
    one-entry Bundle."""
    base = fhir_base
    if request.param == "http":
        with httpx.Client(base_url=base, timeout=30, headers=auth_headers) as c:
            yield c
        return
    inner = httpx.HTTPTransport()
    with httpx.Client(base_url=base, timeout=30, headers=auth_headers,
                      transport=BatchTransport(inner, base)) as c:
        yield c


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run ``http_only`` tests (and tests without ``client``) once; against a
    ``--base-url``, skip the in-process only ones."""
    remote = _remote(config)
    for item in items:
        if remote is None:
            break
        if _HERE not in item.path.parents:
            continue
        internal = sorted(INTERNAL_FIXTURES & set(getattr(item, "fixturenames", ())))
        if item.get_closest_marker("in_process") is not None or internal:
            why = f" (it uses {', '.join(internal)})" if internal else ""
            item.add_marker(pytest.mark.skip(
                reason=f"in-process only: needs the server's internals{why}"))
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
