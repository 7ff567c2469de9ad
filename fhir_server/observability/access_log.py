"""The access log: one record per request, and the helpers that keep it free of PHI.

Only the route *template* is logged (raw paths hold resource ids and query strings can
hold patient identifiers), never a body, never a query string, never a token.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from random import getrandbits
from types import TracebackType
from typing import Final

import orjson

#: Name of the logger that writes one record per request.
ACCESS_LOGGER: Final = "fhir_server.access"
#: Routes logged at DEBUG instead of INFO when they succeed (probes and scrapes would
#: otherwise drown the log).
QUIET_ROUTES: Final = frozenset({"/metrics", "/api/v1/health", "/api/v1/ready"})

# A request id we accept from a client: short, and nothing that could forge a log line
# or a header (no spaces, quotes, control characters).
_REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:~+=/-]{0,127}")
# A client id worth logging: printable ASCII without spaces, bounded.
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,128}")
#: The ASGI scope key where authentication leaves the verified client's id.
CLIENT_KEY: Final = "fhir.client_id"
# Claims naming the client, best first: SMART/OAuth client_id, OIDC azp, then subject.
_CLIENT_CLAIMS: Final = ("client_id", "azp", "sub")
# Decoding a payload bigger than this is not worth the CPU for a log field.
_MAX_PAYLOAD = 8192
NO_CLIENT: Final = "-"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def sane_request_id(raw: bytes) -> str | None:
    """``raw`` as a request id if it is a short, harmless token, else None."""
    if _REQUEST_ID.fullmatch(raw):
        return raw.decode("ascii")
    return None


def new_request_id() -> str:
    """A fresh random request id: 32 hex digits.

    Unique, not secret (it is sent back and logged), so the fast PRNG will do: half the
    cost of ``os.urandom``, a third of ``uuid4``.
    """
    return getrandbits(128).to_bytes(16, "big").hex()


def client_id(authorization: bytes | None) -> str:
    """The client named by a bearer JWT's claims, or ``-``.

    The token is decoded WITHOUT verifying its signature: the value only labels a log
    line, it is never trusted for anything. The token itself is never returned.
    """
    if not authorization or authorization[:7].lower() != b"bearer ":
        return NO_CLIENT
    parts = authorization[7:].strip().split(b".")
    if len(parts) != 3 or len(parts[1]) > _MAX_PAYLOAD:  # not a JWS (opaque or JWE)
        return NO_CLIENT
    payload = parts[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        return NO_CLIENT
    if not isinstance(claims, dict):
        return NO_CLIENT
    for claim in _CLIENT_CLAIMS:
        value = claims.get(claim)
        if isinstance(value, str) and _CLIENT_ID.fullmatch(value):
            return value
    return NO_CLIENT


def access_level(status: int, route: str, failed: bool) -> int:
    """ERROR for 5xx and unhandled errors, DEBUG for quiet routes, else INFO."""
    if failed or status >= 500:
        return logging.ERROR
    if route in QUIET_ROUTES:
        return logging.DEBUG
    return logging.INFO


def log_access(logger: logging.Logger, level: int, *, request_id: str, method: str,
               route: str, status: int, duration_ms: float, client: str,
               exc_info: ExcInfo | None = None) -> None:
    """Write the request's access record (the caller checked ``isEnabledFor``).

    The attributes are the ones ``fhir_server.logs.JsonFormatter`` copies into the JSON
    object; the message repeats them for text logs. The record is made and handled
    directly: ``Logger.log`` would walk the stack for a caller location nobody needs.
    """
    record = logger.makeRecord(
        logger.name, level, __file__, 0, "%s %s %s %.1fms client=%s",
        (method, route, status, duration_ms, client), exc_info, "access",
        {"request_id": request_id, "method": method, "route": route, "status": status,
         "duration_ms": duration_ms, "client_id": client})
    logger.handle(record)


class ClientIds:
    """:func:`client_id` with a small memo: clients send the same token for minutes.

    Keyed by the header's hash, so no token is kept; a 64-bit collision would only
    mislabel one log line. Cleared when full rather than LRU: cheaper and good enough.
    """

    def __init__(self, size: int = 1024) -> None:
        """An empty memo of at most ``size`` entries."""
        self._size = size
        self._memo: dict[int, str] = {}

    def __call__(self, authorization: bytes | None) -> str:
        """The client id of this Authorization header value (``-`` if none)."""
        if not authorization:
            return NO_CLIENT
        key = hash(authorization)
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= self._size:
                self._memo.clear()
            found = self._memo[key] = client_id(authorization)
        return found
