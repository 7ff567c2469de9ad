"""The entries of a batch or transaction: understood, matched to routes, answered.

Each entry's request is matched by the router like an HTTP request, so an entry can
ask for anything HTTP can (reads, searches, history, compartments, operations,
conditional headers) and is answered by the same handler; this module only turns an
entry into a :class:`FhirRequest` and the handler's :class:`FhirResponse` back into a
response entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson

from fhir_server.api.headers import etag, instant
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.router import Route, Router
from fhir_server.errors import BadRequest, FhirError, Issue, PayloadTooLarge
from fhir_server.service.bundle_plan import ORDER
from fhir_server.service.write import dumps

#: Entry ``request`` fields and the headers they stand for.
_CONDITIONS = {"ifMatch": "if-match", "ifNoneMatch": "if-none-match",
               "ifNoneExist": "if-none-exist", "ifModifiedSince": "if-modified-since"}
_ABSOLUTE = ("http://", "https://")
#: The interactions that answer a page of resources.
_PAGES = ("search", "history")
#: The interactions that write (their entries take part in fullUrl mapping and overlaps).
WRITES = frozenset({"create", "update", "patch", "delete", "conditional-update",
                    "conditional-patch", "conditional-delete"})


@dataclass
class Entry:
    """One request entry of a Bundle, matched to its route."""

    index: int
    method: str
    url: str
    path: str
    query: str
    full_url: str | None
    resource: Any
    headers: dict[str, str]
    route: Route | None = None
    params: dict[str, str] = field(default_factory=dict)
    #: the id this entry's write goes to (POST: assigned or found; PUT: its target)
    target_id: str | None = None
    #: a transaction's POST whose ifNoneExist matched a stored resource
    found: bool = False

    @property
    def label(self) -> str:
        """How errors name this entry."""
        return f"entry[{self.index}] ({self.method} {self.url})"

    @property
    def resource_type(self) -> str:
        """The resource type the entry's path names (empty at the base)."""
        return self.params.get("resource_type", "")

    @property
    def searches(self) -> bool:
        """Whether the entry is a search or reads a history (a page of resources)."""
        return self.route is not None and self.route.interaction.startswith(_PAGES)

    @property
    def writes(self) -> bool:
        """Whether the entry creates, changes or deletes a resource."""
        return self.route is not None and self.route.interaction in WRITES

    def request(self, outer: FhirRequest, assigned_id: str | None = None) -> FhirRequest:
        """The entry as a request of its own (Prefer is the Bundle request's)."""
        headers = dict(self.headers)
        prefer = outer.header("prefer")
        if prefer is not None:
            headers["prefer"] = prefer
        return FhirRequest(self.method, self.path, self.query, headers,
                           resource=self.resource, base_url=outer.base_url,
                           context=outer.context, assigned_id=assigned_id)


def read_entries(bundle: dict[str, Any], bases: tuple[str, ...], router: Router,
                 lenient: bool) -> list[Entry | FhirError]:
    """The Bundle's entries, matched to routes; a malformed entry is its error (raised
    at once unless ``lenient``, as a batch takes it)."""
    raw_entries = bundle.get("entry", [])
    if not isinstance(raw_entries, list):
        raise BadRequest("Bundle.entry must be an array")
    out: list[Entry | FhirError] = []
    for index, raw in enumerate(raw_entries):
        try:
            out.append(_entry(index, raw, bases, router))
        except FhirError as exc:
            if not lenient:
                raise
            out.append(exc)
    return out


def _entry(index: int, raw: Any, bases: tuple[str, ...], router: Router) -> Entry:
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise BadRequest(f"entry[{index}] has no request")
    request = raw["request"]
    method = str(request.get("method", "")).upper()
    url = request.get("url")
    if method not in ORDER or not isinstance(url, str) or not url:
        raise BadRequest(f"entry[{index}]: request needs a method "
                         "(GET, HEAD, POST, PUT, PATCH, DELETE) and a url")
    path, _, query = _relative(url, bases, index).partition("?")
    headers = {h: str(request[k]) for k, h in _CONDITIONS.items()
               if isinstance(request.get(k), str)}
    resource = raw.get("resource")
    full_url = raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None
    entry = Entry(index, method, url, path.strip("/"), query, full_url, resource, headers)
    try:
        entry.route, entry.params = router.match(method, entry.path)
        if not entry.route.in_bundle:
            raise BadRequest(f"{method} {url} cannot be a Bundle entry")
    except FhirError as exc:
        raise named(entry, exc) from None
    if method in ("POST", "PUT") and entry.writes and not isinstance(resource, dict):
        raise BadRequest(f"{entry.label} has no resource")
    return entry


def _relative(url: str, bases: tuple[str, ...], index: int) -> str:
    """An entry URL relative to the base: absolute URLs must be on this server."""
    if url.startswith(_ABSOLUTE):
        for base in bases:
            if url.startswith(base + "/") or url.startswith(base + "?"):
                return url[len(base):].lstrip("/")
        raise BadRequest(f"entry[{index}]: request.url {url!r} is not on this server; "
                         "entry URLs are relative to the base")
    return url.lstrip("/")


def named(entry: Entry, exc: FhirError) -> FhirError:
    """The same error, naming the entry (for the OperationOutcome)."""
    issues = [Issue(i.code, f"{entry.label}: {i.diagnostics}", i.severity,
                    i.expression or (f"Bundle.entry[{entry.index}]",)) for i in exc.issues]
    return FhirError(f"{entry.label}: {exc.diagnostics}", issues, exc.headers,
                     status=exc.status, code=exc.code)


def status_line(status: int) -> str:
    """``404 Not Found``: the code and its standard phrase, as Bundle responses carry."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def response_entry(answer: FhirResponse, method: str, base: str) -> dict[str, Any]:
    """A response entry: what HTTP would send as status, Location, ETag, Last-Modified
    and body, in ``response`` and ``resource`` (none for HEAD and 304)."""
    response: dict[str, Any] = {"status": status_line(answer.status)}
    if answer.location is not None:
        response["location"] = answer.location
    version = answer.version
    if version is not None:
        response["etag"] = etag(version.version_id)
        response["lastModified"] = instant(version.last_updated)
    if answer.outcome is not None:
        response["outcome"] = answer.outcome
    entry: dict[str, Any] = {}
    if answer.body is not None and method != "HEAD" and answer.status != 304:
        if version is not None and not version.deleted:
            entry["fullUrl"] = f"{base}/{version.resource_type}/{version.id}"
        # As JSON text at once: a page of a search held as objects takes several
        # times the memory, and the text's length is what the Bundle's answer counts.
        body = answer.body
        entry["resource"] = orjson.Fragment(body if isinstance(body, str) else dumps(body))
    entry["response"] = response
    return entry


class AnswerSize:
    """The bytes of a Bundle's response entries so far, against ``MAX_RESPONSE_BYTES``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = 0

    @property
    def passed(self) -> bool:
        """Whether the answers so far are larger than the limit."""
        return self.bytes > self.limit

    def count(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Count one response entry; returns it."""
        self.bytes += len(orjson.dumps(entry))
        return entry

    def refusal(self, consequence: str) -> PayloadTooLarge:
        """413 ``too-costly``: the answers passed the limit (``consequence`` follows)."""
        return PayloadTooLarge(f"the answers so far take more than the limit of "
                               f"{self.limit} bytes of one response; {consequence}",
                               code="too-costly")
