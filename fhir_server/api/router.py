"""The FHIR router: matches a request to one route of the table and runs its handler.

It knows no storage and no transport: HTTP (``fhir_server.http.adapter``) and Bundle
entries (``fhir_server.api.bundle``) both hand it a :class:`FhirRequest` and get a
:class:`FhirResponse`, errors included (rendered by ``messages.error_response``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from fhir_server.api.messages import FhirRequest, FhirResponse, error_response
from fhir_server.audit import policy, trail
from fhir_server.errors import BadRequest, FhirError, Forbidden, MethodNotAllowed, NotFound
from fhir_server.service.access import OPERATOR_TYPES, AccessScope
from fhir_server.service.context import ServiceContext

Handler = Callable[[FhirRequest, ServiceContext], Awaitable[FhirResponse]]

#: What each path parameter may look like (a segment that does not fit matches no route).
#: Ids are any segment but an operation (``$name``): handlers tell a malformed id (400
#: on a write, 404 on a read) better than "no route" could.
PARAM_PATTERNS = {
    "resource_type": r"[A-Z][A-Za-z]{1,63}",
    "compartment": r"[A-Z][A-Za-z]{1,63}",
    "id": r"[^$].*",
    "vid": r"[^$].*",
    "job_id": r"[^$].*",
    "file": r"[^$].*",
}
_PARAM = re.compile(r"\{(\w+)\}")
#: What a type-like segment is (a ``{resource_type}`` / ``{compartment}`` value); every
#: other parameter takes any segment not empty and not an operation.
_TYPE = re.compile(PARAM_PATTERNS["resource_type"])


#: What a route needs of the caller (besides a SMART permission letter ``c r u d s``
#: on its type): nothing, not even a token (the CapabilityStatement); any valid token
#: (a Bundle, whose entries are checked one by one); the admin scope (the server's own
#: operations).
PUBLIC = "public"
SIGNED_IN = "signed-in"
ADMIN = "admin"
#: the permission of each interaction (operations name theirs in their route)
_PERMISSIONS = {
    "capabilities": PUBLIC, "transaction/batch": SIGNED_IN,
    "read": "r", "vread": "r", "history-instance": "r",
    "search-type": "s", "search-system": "s", "search-compartment": "s",
    "history-type": "s", "history-system": "s",
    "create": "c", "update": "u", "patch": "u", "conditional-update": "u",
    "conditional-patch": "u", "delete": "d", "conditional-delete": "d",
}
_CHANGES = frozenset("cud")


@dataclass(frozen=True)
class OperationParameter:
    """One parameter of an operation (OperationDefinition.parameter, in brief)."""

    name: str
    use: str  # in | out
    type: str
    min: int = 0
    max: str = "1"
    documentation: str = ""


@dataclass(frozen=True)
class Operation:
    """An operation (``$name``) as the CapabilityStatement and OpenAPI describe it."""

    name: str
    #: canonical URL of its OperationDefinition
    definition: str
    documentation: str
    affects_state: bool
    parameters: tuple[OperationParameter, ...] = ()

    @property
    def id(self) -> str:
        """The id its OperationDefinition is served under (``OperationDefinition/[id]``):
        the last segment of its canonical URL (``Patient-everything``, ``reindex``)."""
        return self.definition.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Route:
    """One FHIR interaction: method and path (relative to the base, ``{name}`` for a
    parameter), its name (the FHIR interaction code, or ``operation``), its handler."""

    method: str
    path: str
    interaction: str
    handler: Handler = field(compare=False)
    summary: str
    #: whether a batch or transaction entry may ask for it
    in_bundle: bool = True
    operation: Operation | None = None
    #: what the caller needs (PUBLIC, SIGNED_IN, ADMIN or a permission letter); None:
    #: the interaction's own permission
    access: str | None = None
    #: takes and answers content other than FHIR JSON (Binary): its body arrives as a
    #: stream, and it judges ``Accept`` itself
    raw: bool = False

    @property
    def permission(self) -> str:
        """What the caller needs: PUBLIC, SIGNED_IN, ADMIN or a permission letter."""
        if self.access is not None:
            return self.access
        if self.interaction not in _PERMISSIONS:
            raise ValueError(f"{self.template}: an operation route must name its access")
        return _PERMISSIONS[self.interaction]

    @property
    def template(self) -> str:
        """The path template from the server root, e.g. ``/fhir/{resource_type}/{id}``
        (the ``route`` label of metrics and logs)."""
        return "/fhir" + (f"/{self.path}" if self.path else "")

    @property
    def segments(self) -> tuple[str, ...]:
        """The path's segments."""
        return tuple(self.path.split("/")) if self.path else ()

    @property
    def resource_type(self) -> str | None:
        """The type a route is only for (``Patient/{id}/$everything``), or None."""
        first = self.segments[0] if self.segments else ""
        return first if _TYPE.fullmatch(first) else None

    @property
    def level(self) -> str:
        """``system``, ``type``, ``instance`` or ``compartment``."""
        segments = self.segments
        if not segments or (segments[0] != "{resource_type}" and self.resource_type is None):
            return "compartment" if segments[:1] == ("{compartment}",) else "system"
        return "instance" if len(segments) > 1 and segments[1] == "{id}" else "type"


class _Pattern:
    """One path pattern and the routes on it by method."""

    def __init__(self, segments: tuple[str, ...]) -> None:
        self.segments = segments
        self.matchers: list[tuple[str | None, re.Pattern[str] | None]] = []
        for segment in segments:
            name = _PARAM.fullmatch(segment)
            if name is None:
                self.matchers.append((None, None))
            else:
                self.matchers.append((name[1], re.compile(PARAM_PATTERNS[name[1]])))
        self.methods: dict[str, Route] = {}

    @property
    def literals(self) -> int:
        return sum(1 for name, _ in self.matchers if name is None)

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for value, expected, (name, pattern) in zip(segments, self.segments, self.matchers,
                                                    strict=True):
            if name is None:
                if value != expected:
                    return None
            elif pattern is not None and pattern.fullmatch(value):
                params[name] = value
            else:
                return None
        return params

    def allow(self) -> str:
        methods = set(self.methods)
        if "GET" in methods:
            methods.add("HEAD")
        return ", ".join(sorted(methods))


class Router:
    """The route table made matchable, and the dispatch of requests to handlers."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        patterns: dict[tuple[str, ...], _Pattern] = {}
        for route in self.routes:
            route.permission  # noqa: B018  (an operation without its access fails here)
            pattern = patterns.setdefault(route.segments, _Pattern(route.segments))
            if route.method in pattern.methods:
                raise ValueError(f"two routes for {route.method} {route.template}")
            pattern.methods[route.method] = route
        by_length: dict[int, list[_Pattern]] = {}
        for pattern in patterns.values():
            by_length.setdefault(len(pattern.segments), []).append(pattern)
        # Literal segments win over parameters (``Patient/_history`` is no read).
        self._by_length = {n: sorted(ps, key=lambda p: -p.literals)
                           for n, ps in by_length.items()}
        self._literals = frozenset(seg for r in self.routes for seg in r.segments
                                   if not _PARAM.fullmatch(seg))
        # (method, shape of the path) -> route and the parameter name at each position
        self._shapes: dict[tuple[str, ...], tuple[Route, tuple[str, ...]]] = {}

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route and path parameters of a request; NotFound or MethodNotAllowed.

        Every request asks this, so a path's *shape* (its literal segments, and of the
        others only which parameter patterns they fit) is matched once and remembered;
        ids vary, shapes hardly do."""
        segments = path.split("/") if path else []
        shape = (method, *(s if s in self._literals or s.startswith("$") else
                           "T" if _TYPE.fullmatch(s) else "I" if s else "" for s in segments))
        found = self._shapes.get(shape)
        if found is not None:
            route, names = found
            return route, {n: v for n, v in zip(names, segments, strict=True) if n}
        route, params = self._match(method, segments, path)
        if len(self._shapes) < 4096:
            self._shapes[shape] = (route, tuple(
                m[1] if (m := _PARAM.fullmatch(seg)) else "" for seg in route.segments))
        return route, params

    def _match(self, method: str, segments: list[str], path: str
               ) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for pattern in self._by_length.get(len(segments), ()):
            params = pattern.match(segments)
            if params is None:
                continue
            route = pattern.methods.get("GET" if method == "HEAD" else method)
            if route is not None:
                return route, params
            allowed.append(pattern.allow())
        if allowed:
            methods = sorted({m.strip() for a in allowed for m in a.split(",")})
            raise MethodNotAllowed(f"{method} is not supported on /fhir/{path}".rstrip("/"),
                                   headers={"Allow": ", ".join(methods)})
        raise NotFound(_unmatched(segments, path))

    async def dispatch(self, request: FhirRequest, ctx: ServiceContext,
                       in_bundle: bool = False) -> FhirResponse:
        """Run the request's route; every FhirError becomes its error response."""
        try:
            route, params = self.match(request.method, request.path)
            if in_bundle and not route.in_bundle:
                raise BadRequest(f"{request.method} /{request.path} cannot be a Bundle entry")
            return await self.handle(route, params, request, ctx)
        except FhirError as exc:
            return error_response(exc)

    async def handle(self, route: Route, params: dict[str, str], request: FhirRequest,
                     ctx: ServiceContext) -> FhirResponse:
        """Run ``route``'s handler on a request already matched to it."""
        request.params = params
        request.router = self
        audit = trail.current()
        if audit is None:
            return await self._run(route, params, request, ctx)
        return await audit.interaction(route, params, request,
                                       lambda: self._run(route, params, request, ctx))

    async def _run(self, route: Route, params: dict[str, str], request: FhirRequest,
                   ctx: ServiceContext) -> FhirResponse:
        scope = request.context.scope
        if scope is not None:
            _authorize(route, params, scope)
        policy.check_change(route.interaction, params)  # AuditEvents are append-only
        return await route.handler(request, ctx)


def permission(route: Route, params: dict[str, str]) -> str:
    """What the caller needs for ``route`` on these path parameters: the route's own
    permission, but ADMIN to change a resource of the OPERATOR_TYPES (HTTP and Bundle
    entries alike: both are authorized here)."""
    needed = route.permission
    if needed in _CHANGES and params.get("resource_type") in OPERATOR_TYPES:
        return ADMIN
    return needed


def _authorize(route: Route, params: dict[str, str], scope: AccessScope) -> None:
    """Forbidden unless the caller's scope allows ``route`` (what it may then see or
    change is the storage's business)."""
    needed = permission(route, params)
    if needed in (PUBLIC, SIGNED_IN):
        return
    if needed == ADMIN:
        if not scope.admin:
            what = (f"{route.interaction} of a {params['resource_type']}"
                    if route.access is None else route.template)
            raise Forbidden(f"{what} needs the admin scope (system/*.*)")
        return
    resource_type = params.get("resource_type") or route.resource_type
    if not scope.permits(needed, resource_type):
        what = resource_type or "any resource type"
        raise Forbidden(f"the token's scopes do not allow {route.interaction} "
                        f"({needed}) on {what}")


def _unmatched(segments: Sequence[str], path: str) -> str:
    operation = next((s for s in segments if s.startswith("$")), None)
    if operation is not None:
        where = "/".join(segments[:segments.index(operation)]) or "the system level"
        return f"the operation {operation} is not supported on {where}"
    return f"no route for /fhir/{path}".rstrip("/")
