"""gzip for clients that ask for it, at no cost for those that do not."""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send


class Gzip:
    """Starlette's GZipMiddleware, entered only when ``Accept-Encoding`` names gzip.

    Starlette's own middleware wraps every response, asked for or not, in a responder that
    parses its headers; a request without gzip in ``Accept-Encoding`` skips all of it here.
    """

    def __init__(self, app: ASGIApp, minimum_size: int, compresslevel: int,
                 identity_paths: tuple[str, ...] = ()) -> None:
        """Compress bodies of ``minimum_size`` bytes or more at ``compresslevel``, but
        for GETs of paths starting with one of ``identity_paths`` (Binary content: PDFs
        and images are compressed already, and its Content-Length and ranges must stay
        those of the stored bytes)."""
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=compresslevel)
        self.identity_paths = identity_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request to gzip or straight to the app."""
        if scope["type"] == "http" and not (
                self.identity_paths and scope["method"] in ("GET", "HEAD")
                and scope["path"].startswith(self.identity_paths)):
            for name, value in scope["headers"]:
                if name == b"accept-encoding":
                    if b"gzip" in value.lower():
                        await self.gzip(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)
