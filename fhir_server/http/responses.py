"""FHIR answers on the wire: negotiation of the media type, and a FhirResponse rendered
as an HTTP response (stored JSON sent as it is, or written as FHIR XML when negotiated;
a Bundle a few entries at a time, never whole). Errors become FhirResponses in one place
(``api.messages.error_response``), whether the router or the HTTP layer met them."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from fhir_server.api.headers import etag, http_date
from fhir_server.api.messages import FhirResponse
from fhir_server.api.messages import error_response as error_answer
from fhir_server.api.negotiation import FHIR_JSON, is_xml, response_media_type
from fhir_server.errors import FhirError
from fhir_server.formats import xml_write

log = logging.getLogger(__name__)

_TRUE = ("true", "1", "yes")
#: A Bundle goes out in pieces of about this size (an entry is never split), so its
#: whole JSON is never in memory; a smaller one goes out whole, with a Content-Length.
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Negotiated:
    """How to render this request's response: media type and pretty-printing."""

    media_type: str
    pretty: bool

    @classmethod
    def of(cls, headers: Mapping[str, str], query: str) -> Negotiated:
        """Negotiate from ``_format``/``Accept`` and ``_pretty``; NotAcceptable if impossible."""
        accept = headers.get("accept")
        if not query and accept in _PLAIN_ACCEPT:
            return _DEFAULT  # the common case, without parsing anything
        params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        media = response_media_type(accept, params.get("_format"))
        return cls(media, params.get("_pretty", "").lower() in _TRUE)


_DEFAULT = Negotiated(FHIR_JSON, False)
_PLAIN_ACCEPT = frozenset({None, "*/*", "application/fhir+json", "application/json+fhir"})


def render(payload: Any, pretty: bool) -> bytes:
    """Serialize a JSON value; ``orjson.Fragment`` parts are embedded as they are."""
    if pretty:
        return orjson.dumps(_unfragment(payload), option=orjson.OPT_INDENT_2)
    return orjson.dumps(payload)


def bundle_chunks(bundle: dict[str, Any], pretty: bool) -> Iterator[bytes]:
    """The JSON of a Bundle whose last member is a non-empty ``entry`` (as ``render``
    gives it, byte for byte), in pieces of about ``CHUNK_BYTES``."""
    head = render({k: v for k, v in bundle.items() if k != "entry"}, pretty)
    if pretty:
        # An entry is indented two levels deeper than alone: its newlines are shifted (a
        # JSON string never holds a raw newline).
        piece = [head[:-2], b',\n  "entry": [\n    ']
        separator, close, indent = b",\n    ", b"\n  ]\n}", b"\n    "
    else:
        piece = [head[:-1], b',"entry":[']
        separator, close, indent = b",", b"]}", b""
    size = 0
    for number, entry in enumerate(bundle["entry"]):
        data = render(entry, pretty)
        if indent:
            data = data.replace(b"\n", indent)
        if number:
            piece.append(separator)
        piece.append(data)
        size += len(data)
        if size >= CHUNK_BYTES:
            yield b"".join(piece)
            piece, size = [], 0
    piece.append(close)
    yield b"".join(piece)


def _streamed(body: Any) -> bool:
    """Whether ``body`` is sent with ``bundle_chunks``: a Bundle ending in its entries."""
    return (isinstance(body, dict) and len(body) > 1 and body.get("resourceType") == "Bundle"
            and isinstance(body.get("entry"), list) and bool(body["entry"])
            and next(reversed(body)) == "entry")


async def _pieces(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _unfragment(value: Any) -> Any:
    # Indenting needs real values: fragments hold stored JSON text (which they do not
    # expose, but give back when dumped).
    if isinstance(value, orjson.Fragment):
        return orjson.loads(orjson.dumps(value))
    if isinstance(value, dict):
        return {k: _unfragment(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unfragment(v) for v in value]
    return value


def http_response(answer: FhirResponse, neg: Negotiated, base_url: str) -> Response:
    """A FhirResponse on the wire: ETag, Last-Modified and Location from its version and
    location, its body (or else its outcome) in the negotiated media type."""
    headers = dict(answer.headers)
    version = answer.version
    if version is not None:
        headers["ETag"] = etag(version.version_id)
        headers["Last-Modified"] = http_date(version.last_updated)
    if answer.location is not None:
        headers["Location"] = f"{base_url}/{answer.location}"
    if answer.raw is not None:  # a Binary's bytes, as stored
        headers["Content-Type"] = answer.raw.media_type
        headers["Content-Length"] = str(answer.raw.length)
        return StreamingResponse(answer.raw.chunks, answer.status, headers)
    body = answer.body if answer.body is not None else answer.outcome
    if body is None:
        return Response(status_code=answer.status, headers=headers)
    media_type = f"{neg.media_type}; charset=utf-8"
    if is_xml(neg.media_type):
        return _xml_response(body, neg.pretty, answer.status, headers, media_type)
    if isinstance(body, str):  # stored JSON text: sent as it is unless indented
        data = render(orjson.loads(body), True) if neg.pretty else body.encode()
    elif _streamed(body):
        pieces = bundle_chunks(body, neg.pretty)
        data = next(pieces)
        second = next(pieces, None)
        if second is not None:
            return StreamingResponse(_pieces(itertools.chain([data, second], pieces)),
                                     answer.status, headers, media_type=media_type)
    else:
        data = render(body, neg.pretty)
    return Response(data, answer.status, headers, media_type=media_type)


def _xml_response(body: Any, pretty: bool, status: int, headers: dict[str, str],
                  media_type: str) -> Response:
    """The body as FHIR XML; a Bundle that ends in its entries (and has no signature,
    which XML writes after them) a few entries at a time."""
    if _streamed(body) and "signature" not in body:
        pieces = xml_write.bundle_chunks(body, pretty, CHUNK_BYTES)
        data = next(pieces)
        second = next(pieces, None)
        if second is not None:
            return StreamingResponse(_pieces(itertools.chain([data, second], pieces)),
                                     status, headers, media_type=media_type)
    else:
        data = xml_write.to_xml(body, pretty)
    return Response(data, status, headers, media_type=media_type)


def error_response(request: Request, exc: FhirError) -> Response:
    """An error outside the FHIR router (no route, limits, throttling) as an
    OperationOutcome with the error's status, like every error of the API."""
    try:
        neg = Negotiated.of(request.headers, request.scope.get("query_string", b"").decode(
            "latin-1"))
    except FhirError:
        neg = _DEFAULT
    log_server_error(request.method, exc)
    return http_response(error_answer(exc), neg, "")


def log_server_error(method: str, exc: FhirError) -> None:
    """A warning for an expected 5xx (database away, timeout), without the path: it may
    hold ids (the access line has the route template and the request id)."""
    if exc.status >= 500:
        log.warning("%s -> %s: %s", method, exc.status, exc.diagnostics)
