"""Trusted hosts: the Host header names links only when it is one of ALLOWED_HOSTS.

Without ``FHIR_BASE_URL`` every link of an answer (``Location``, Bundle links, the
authorization server's issuer and endpoints) is built from the request's Host header, so
a forged one (``Host: evil.example``) would make the server hand out links, and issue
tokens, for someone else's site. Requests to those paths must therefore name an allowed
host; with ``FHIR_BASE_URL`` set, links come from it and an unknown Host only loses
the standing of a local base (``http.adapter``).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.errors import BadRequest
from fhir_server.http.responses import error_response

#: The paths whose answers hold links built from the request's base.
LINKED_PATHS = ("/fhir/", "/auth/", "/.well-known/")


def host_name(value: str) -> str:
    """The host part of a Host header (or an ALLOWED_HOSTS entry): lower-cased, without
    its port or an IPv6 address's brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:  # name:port; a bare IPv6 address has more colons
        return value.partition(":")[0]
    return value


def host_allowed(host: str | None, allowed: Sequence[str]) -> bool:
    """Whether the Host header ``host`` names one of ``allowed`` (``*``: any)."""
    if "*" in allowed:
        return True
    if not host:
        return False
    name = host_name(host)
    return any(name == host_name(a) for a in allowed)


def links_from_host(scope: Scope) -> bool:
    """Whether the answer to this request holds links built from its Host header."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path == "/fhir" or path.startswith(LINKED_PATHS)


class TrustedHosts:
    """ASGI middleware answering 400 to a linked path whose Host is not allowed (only
    installed while ``FHIR_BASE_URL`` is not set)."""

    def __init__(self, app: ASGIApp, *, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = tuple(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse before anything runs, so nothing is written for a refused Host."""
        if scope["type"] != "http" or not links_from_host(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        host = request.headers.get("host")
        if host_allowed(host, self.allowed):
            await self.app(scope, receive, send)
            return
        named = f"names {host!r}" if host else "is missing"
        error = BadRequest(f"the Host header {named}, which is not one of ALLOWED_HOSTS: "
                           "links are built from it; set FHIR_BASE_URL to this server's "
                           "public base URL, or add the host to ALLOWED_HOSTS")
        await error_response(request, error)(scope, receive, send)
