"""The transport-agnostic request and response every FHIR handler takes and returns.

HTTP builds a :class:`FhirRequest` from the wire (``fhir_server.http.adapter``); a batch
or transaction builds one per entry; both get a :class:`FhirResponse` back from the
same handler, which HTTP writes as status, headers and body and a Bundle as an entry's
``response`` and ``resource``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fhir_server.errors import BadRequest, FhirError, Issue
from fhir_server.service.access import SYSTEM, RequestContext
from fhir_server.service.repository import StoredVersion

if TYPE_CHECKING:
    from fhir_server.api.router import Router

_NO_HEADERS: Mapping[str, str] = {}


@dataclass(slots=True)
class FhirRequest:
    """One FHIR interaction as asked.

    ``path`` is relative to the FHIR base, without slashes around it (``Patient/1``,
    ``""`` for the base itself). ``headers`` are looked up by lower-case name. A body is
    either ``body`` (bytes as received, with its ``content-type`` header) or ``resource``
    (already parsed: a Bundle entry's).
    """

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS)
    body: bytes | None = None
    resource: Any = None
    base_url: str = ""
    context: RequestContext = SYSTEM
    stream: AsyncIterator[bytes] | None = None
    #: whether the transport carries content other than FHIR (HTTP does, a Bundle
    #: entry does not): a Binary may then be answered as its raw bytes
    raw: bool = False
    #: the id a transaction gave this create beforehand (its entry's fullUrl maps to it)
    assigned_id: str | None = None
    #: set by the router on dispatch: the path's parameters and the router itself
    params: dict[str, str] = field(default_factory=dict)
    router: Router | None = None
    _pairs: list[tuple[str, str]] | None = None

    def header(self, name: str) -> str | None:
        """A header's value by lower-case name, or None."""
        return self.headers.get(name)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The query's (name, value) pairs in order, percent-decoded, blanks kept.

        A NUL character is refused here, once for every handler: no FHIR value holds one,
        and PostgreSQL cannot store or compare it.
        """
        if self._pairs is None:
            pairs = parse_qsl(self.query, keep_blank_values=True) if self.query else []
            if any("\x00" in k or "\x00" in v for k, v in pairs):
                raise BadRequest("the query holds a NUL character (%00)")
            self._pairs = pairs
        return self._pairs

    def query_value(self, name: str) -> str | None:
        """The value of a query parameter (the last one if repeated), or None."""
        if not self.query:
            return None
        return next((v for k, v in reversed(self.pairs) if k == name), None)

    def query_values(self, name: str) -> list[str]:
        """Every value of a query parameter."""
        return [v for k, v in self.pairs if k == name] if self.query else []


@dataclass(frozen=True, slots=True)
class RawContent:
    """Bytes that are not FHIR (a Binary's content), streamed as they are read."""

    media_type: str
    chunks: AsyncIterator[bytes]
    length: int


@dataclass(slots=True)
class FhirResponse:
    """What a handler answers.

    ``body`` is a JSON value (``orjson.Fragment`` parts allowed) or, as a ``str``, the
    JSON text of a stored resource; ``outcome`` an OperationOutcome about the
    interaction (an error's, or an informational one), sent as the body over HTTP when
    there is no other and as ``response.outcome`` in a Bundle. ``version`` gives ETag and
    Last-Modified, ``location`` (relative to the base) the Location. ``raw``, over HTTP
    only, is sent instead of any body.
    """

    status: int
    body: Any = None
    outcome: dict[str, Any] | None = None
    version: StoredVersion | None = None
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: RawContent | None = None


def error_response(exc: FhirError) -> FhirResponse:
    """The one rendering of an error: its status, its OperationOutcome, its headers."""
    return FhirResponse(exc.status, outcome=exc.operation_outcome(), headers=dict(exc.headers))


def outcome(severity: str, code: str, diagnostics: str) -> dict[str, Any]:
    """A one-issue OperationOutcome (warnings in searchsets)."""
    return {"resourceType": "OperationOutcome",
            "issue": [Issue(code, diagnostics, severity).to_json()]}
