"""The authorization server's routes and the resources they share (opened in the app's
lifespan): a synchronous pool, the keys, authlib's server, the cookie signer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
import orjson
import psycopg
from authlib.oauth2.rfc6749 import InsecureTransportError
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fhir_server.auth.server import pages
from fhir_server.auth.server.authorize import authorize
from fhir_server.auth.server.discovery import openid_configuration
from fhir_server.auth.server.endpoints import (
    Introspection,
    Registration,
    Revocation,
    authenticate_bearer,
    bearer_token,
    has_system_scope,
)
from fhir_server.auth.server.grants import (
    JwksFetcher,
    PrivateKeyJwt,
    SmartAuthorizationCode,
    SmartClientCredentials,
    SmartCodeChallenge,
    SmartOpenIDCode,
    SmartRefreshToken,
)
from fhir_server.auth.server.models import BEARER_METHOD
from fhir_server.auth.server.oauth import Incoming, KeyCache, Outgoing, SmartServer
from fhir_server.auth.server.session import Signer
from fhir_server.auth.server.store import Store
from fhir_server.auth.tokens import issuer_for
from fhir_server.http.adapter import request_base
from fhir_server.settings import Settings

log = logging.getLogger(__name__)

#: EHR launch ids live this long (seconds)
LAUNCH_SECONDS = 600
_FORM = "application/x-www-form-urlencoded"
#: the largest form or JSON body accepted (bytes)
MAX_BODY = 64 * 1024
_JSON_HEADERS = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]


def build_server(store: Store, token_ttl: int) -> SmartServer:
    """authlib's server with SMART's grants, client authentication and endpoints."""
    server = SmartServer(store, KeyCache(store), token_ttl, JwksFetcher())
    server.register_client_auth_method("private_key_jwt", PrivateKeyJwt(server))
    server.register_client_auth_method(BEARER_METHOD, authenticate_bearer(server))
    server.register_grant(SmartAuthorizationCode,
                          [SmartCodeChallenge(required=True), SmartOpenIDCode(server)])
    server.register_grant(SmartRefreshToken)
    server.register_grant(SmartClientCredentials)
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
    server.register_endpoint(Registration)
    return server


def _error(status: int, error: str, description: str) -> Outgoing:
    return Outgoing(status, orjson.dumps({"error": error, "error_description": description}),
                    list(_JSON_HEADERS))


class AuthServer:
    """The built-in authorization server of one worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Store | None = None
        self._server: SmartServer | None = None
        self._signer: Signer | None = None

    async def open(self) -> None:
        """Open the pool (without waiting for the database)."""
        self._store = await anyio.to_thread.run_sync(Store.connect,
                                                     self.settings.database_url)
        ttl = self.settings.auth_token_ttl_seconds
        self._server = build_server(self._store, ttl)

    async def close(self) -> None:
        """Close the pool."""
        if self._store is not None:
            await anyio.to_thread.run_sync(self._store.close)

    @property
    def server(self) -> SmartServer:
        """authlib's server (after ``open``)."""
        assert self._server is not None, "AuthServer.open() has not run"
        return self._server

    def _signer_now(self) -> Signer:
        if self._signer is None:
            self._signer = Signer(self.server.store.secret("session"))
        return self._signer

    @property
    def routes(self) -> list[BaseRoute]:
        """The routes to mount at the application's root."""
        return [
            Route("/.well-known/openid-configuration", self.discovery, methods=["GET"]),
            Route("/auth/jwks", self.jwks, methods=["GET"]),
            Route("/auth/authorize", self.authorize, methods=["GET", "POST"]),
            Route("/auth/token", self.token, methods=["POST"]),
            Route("/auth/introspect", self.introspect, methods=["POST"]),
            Route("/auth/revoke", self.revoke, methods=["POST"]),
            Route("/auth/register", self.register, methods=["POST"]),
            Route("/auth/launch", self.launch, methods=["POST"]),
            Route("/auth/style.css", self.style, methods=["GET"]),
        ]

    # --- plumbing --------------------------------------------------------------------

    def _base(self, request: Request) -> str:
        configured = self.settings.fhir_base_url.rstrip("/")
        return configured or request_base(request.scope, request.headers)

    async def _incoming(self, request: Request, body: str = "form") -> Incoming | Outgoing:
        base = self._base(request)
        # the URL as the issuer names it (FHIR_BASE_URL's scheme behind a TLS proxy)
        query = request.url.query
        url = f"{issuer_for(base)}{request.url.path}" + (f"?{query}" if query else "")
        incoming = Incoming(request.method, url, base,
                            {k.lower(): v for k, v in request.headers.items()},
                            list(request.query_params.multi_items()))
        if any("\0" in k or "\0" in v for k, v in incoming.query):
            return _error(400, "invalid_request", "parameters must not hold NUL characters")
        if request.method != "POST":
            return incoming
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if body == "form":
            if kind != _FORM:
                return _error(400, "invalid_request", f"the body must be {_FORM}")
            raw = await _body(request)
            if raw is None:
                return _error(413, "invalid_request", "the body is too large")
            try:
                incoming.form = parse_qsl(raw.decode(), keep_blank_values=True,
                                          strict_parsing=False, max_num_fields=200)
            except (UnicodeDecodeError, ValueError):
                return _error(400, "invalid_request", "the body is not a valid form")
            if any("\0" in k or "\0" in v for k, v in incoming.form):
                return _error(400, "invalid_request", "parameters must not hold NUL "
                                                      "characters")
        else:
            raw = await _body(request)
            if raw is None:
                return _error(413, "invalid_request", "the body is too large")
            try:
                incoming.json = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return _error(400, "invalid_request", "the body is not JSON")
            if not isinstance(incoming.json, dict):
                return _error(400, "invalid_request", "the body must be a JSON object")
        return incoming

    async def _run(self, request: Request, work: Callable[[Incoming], Outgoing],
                   body: str = "form") -> Response:
        incoming = await self._incoming(request, body)
        if isinstance(incoming, Outgoing):
            return _response(incoming)
        try:
            answer = await anyio.to_thread.run_sync(work, incoming)
        except InsecureTransportError:
            answer = _error(400, "insecure_transport", "OAuth 2 needs HTTPS (plain http "
                                                       "only on loopback)")
        except psycopg.DataError as exc:  # a value PostgreSQL cannot hold (NUL in JSON)
            answer = _error(400, "invalid_request", f"a value is not acceptable: {exc}")
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.warning("authorization server: the database is unavailable: %s", exc)
            answer = _error(503, "temporarily_unavailable", "the database is unavailable")
            answer.headers.append(("Retry-After", "5"))
        authenticator = getattr(request.app.state, "authenticator", None)
        if authenticator is not None:
            for jti, _expires in incoming.revoked:
                authenticator.forget(jti)
        return _response(answer)

    # --- endpoints -------------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        """OpenID Connect discovery (also RFC 8414 metadata)."""
        return _response(Outgoing(200, orjson.dumps(openid_configuration(
            self._base(request))), [("Cache-Control", "max-age=300")]))

    async def jwks(self, request: Request) -> Response:
        """The public keys tokens are signed with."""

        def work(incoming: Incoming) -> Outgoing:
            data = self.server.keys.get().jwks()
            return Outgoing(200, orjson.dumps(data), [("Cache-Control", "max-age=5")],
                            "application/jwk-set+json")
        return await self._run(request, work)

    async def authorize(self, request: Request) -> Response:
        """The authorization endpoint and its pages."""
        cookies = dict(request.cookies)

        def work(incoming: Incoming) -> Outgoing:
            return authorize(self.server, self._signer_now(), incoming, cookies)
        return await self._run(request, work)

    async def token(self, request: Request) -> Response:
        """The token endpoint."""
        return await self._run(request, self.server.create_token_response)

    async def introspect(self, request: Request) -> Response:
        """RFC 7662."""
        return await self._run(request, lambda i: self.server.create_endpoint_response(
            "introspection", i))

    async def revoke(self, request: Request) -> Response:
        """RFC 7009."""
        return await self._run(request, lambda i: self.server.create_endpoint_response(
            "revocation", i))

    async def register(self, request: Request) -> Response:
        """RFC 7591 dynamic registration."""
        return await self._run(request, lambda i: self.server.create_endpoint_response(
            "client_registration", i), body="json")

    async def launch(self, request: Request) -> Response:
        """EHR launch: ``{"patient": id, "encounter": id?}`` gives a ``launch`` id."""
        def work(incoming: Incoming) -> Outgoing:
            token = bearer_token(self.server, incoming.headers)
            if token is None or not has_system_scope(token, admin=True):
                answer = _error(401, "invalid_token", "a Bearer token of this server "
                                                      "granting system/*.* is required")
                answer.headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
                return answer
            data: dict[str, Any] = incoming.json
            patient, encounter = data.get("patient"), data.get("encounter")
            if not isinstance(patient, str) or not patient or not (
                    encounter is None or isinstance(encounter, str)):
                return _error(400, "invalid_request", "patient (an id) is required; "
                                                      "encounter is an optional id")
            patient = patient.removeprefix("Patient/")
            if not self.server.store.patient_exists(patient):
                return _error(400, "invalid_request", f"Patient/{patient} does not exist")
            encounter = encounter.removeprefix("Encounter/") if encounter else None
            launch = self.server.store.add_launch(patient, encounter, LAUNCH_SECONDS)
            return Outgoing(201, orjson.dumps({"launch": launch, "expires_in": LAUNCH_SECONDS}),
                            list(_JSON_HEADERS))
        return await self._run(request, work, body="json")

    async def style(self, request: Request) -> Response:
        """The pages' stylesheet."""
        return Response(pages.STYLE, media_type="text/css",
                        headers={"Cache-Control": "public, max-age=3600"})


async def _body(request: Request) -> bytes | None:
    """The request body, None past ``MAX_BODY``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _response(answer: Outgoing) -> Response:
    response = Response(answer.body, answer.status, media_type=answer.media_type)
    for name, value in answer.headers:
        if name.lower() == "content-type":
            response.headers["content-type"] = value
        else:
            response.headers.append(name, value)
    return response
