"""FHIR responses: stored JSON sent as is, Bundles, and the one OperationOutcome renderer."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.errors import FhirError, Issue
from fhir_server.http.negotiation import FHIR_JSON, response_media_type

log = logging.getLogger(__name__)

_TRUE = ("true", "1", "yes")


@dataclass(frozen=True, slots=True)
class Negotiated:
    """How to render this request's response: media type and pretty-printing."""

    media_type: str
    pretty: bool

    @classmethod
    def from_request(cls, request: Request) -> Negotiated:
        """Negotiate from ``_format``/``Accept`` and ``_pretty``; NotAcceptable if impossible."""
        accept = request.headers.get("accept")
        if not request.scope.get("query_string") and accept in _PLAIN_ACCEPT:
            return _DEFAULT  # the common case, without parsing anything
        query = request.query_params
        media = response_media_type(accept, query.get("_format"))
        return cls(media, query.get("_pretty", "").lower() in _TRUE)


_DEFAULT = Negotiated(FHIR_JSON, False)
_PLAIN_ACCEPT = frozenset({None, "*/*", "application/fhir+json", "application/json+fhir"})


def render(payload: Any, pretty: bool) -> bytes:
    """Serialize a JSON value; ``orjson.Fragment`` parts are embedded as they are."""
    if pretty:
        return orjson.dumps(_unfragment(payload), option=orjson.OPT_INDENT_2)
    return orjson.dumps(payload)


def _unfragment(value: Any) -> Any:
    # Indenting needs real values: fragments hold stored JSON text.
    if isinstance(value, orjson.Fragment):
        return orjson.loads(value.contents)
    if isinstance(value, dict):
        return {k: _unfragment(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unfragment(v) for v in value]
    return value


def fhir_response(payload: Any, neg: Negotiated, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A JSON response with the negotiated FHIR media type."""
    return Response(render(payload, neg.pretty), status, headers,
                    media_type=f"{neg.media_type}; charset=utf-8")


def stored_response(content: str, neg: Negotiated, status: int = 200,
                    headers: dict[str, str] | None = None) -> Response:
    """A stored resource's JSON text, sent without re-parsing unless pretty-printed."""
    body = render(orjson.loads(content), True) if neg.pretty else content.encode()
    return Response(body, status, headers, media_type=f"{neg.media_type}; charset=utf-8")


def outcome(severity: str, code: str, diagnostics: str) -> dict[str, Any]:
    """A one-issue OperationOutcome (informational ones for ``Prefer: return=...``)."""
    return {"resourceType": "OperationOutcome",
            "issue": [Issue(code, diagnostics, severity).to_json()]}


def error_response(request: Request, exc: FhirError) -> Response:
    """The single renderer of errors: an OperationOutcome with the error's status."""
    try:
        neg = Negotiated.from_request(request)
    except FhirError:
        neg = Negotiated(FHIR_JSON, False)
    if exc.status >= 500:
        # No path: it may hold ids; the access line has the route template and request id.
        log.warning("%s -> %s: %s", request.method, exc.status, exc.diagnostics)
    return fhir_response(exc.operation_outcome(), neg, exc.status, exc.headers)


def query_string(pairs: Iterable[tuple[str, str]]) -> str:
    """``name=value&...`` for Bundle links, percent-encoded as usual except for the
    characters a FHIR query reads plainly and RFC 3986 allows in a query (``:`` of
    modifiers, ``,`` of OR lists, ``/`` of references, ``$`` of composites); decoded,
    the query is the same either way."""
    return urlencode(list(pairs), safe=":,/$")
