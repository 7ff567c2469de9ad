"""The documents: one of the whole route table (generic ``{resource_type}`` paths), and
one per resource type with its concrete paths and its own search parameters."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_server.api.openapi.components import (
    FHIR_JSON,
    SPEC,
    components,
    prune,
    resource_schema,
)
from fhir_server.api.openapi.operations import Place, operation, shape_of
from fhir_server.api.openapi.params import SearchFacts, component_name, query_parameter
from fhir_server.api.openapi.shapes import RESULT_QUERY
from fhir_server.api.router import PUBLIC, Route
from fhir_server.search.registry import SearchParam

TITLE = "FHIR R4 Server"
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
_TAGS = {"system": "System", "type": "Type", "instance": "Instance",
         "compartment": "Compartment", "operation": "Operations"}
_TAG_TEXT = {"System": "Whole-system interactions", "Type": "Interactions on a type",
             "Instance": "Interactions on one resource",
             "Compartment": f"Searches in a [compartment]({SPEC}compartmentdefinition.html)",
             "Operations": f"[Operations]({SPEC}operations.html) and their jobs"}


#: Swagger UI's "Authorize": the built-in server's authorization code flow (with PKCE,
#: for a public client registered with the docs' redirect URI), or a pasted token
#: (``fhir-server token``). Paths are from the server's root, as the token endpoint is.
SECURITY_SCHEMES: dict[str, Any] = {
    "smart": {
        "type": "oauth2",
        "description": "SMART App Launch: the built-in authorization server. Register the "
                       "docs once as a public client with the redirect URI "
                       "`<origin>/api/docs/oauth2-redirect` (see the README) and give its "
                       "client id here.",
        "flows": {"authorizationCode": {
            "authorizationUrl": "/auth/authorize", "tokenUrl": "/auth/token",
            "refreshUrl": "/auth/token",
            "scopes": {"openid": "who you are", "fhirUser": "your FHIR resource",
                       "user/*.rs": "read and search what you may",
                       "user/*.cruds": "read and change what you may"}}},
    },
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "An access token, e.g. from "
                              "`fhir-server token --scope 'system/*.*'`."},
}


@dataclass(frozen=True)
class ApiFacts:
    """What the documents are generated from: the route table and the search registry."""

    routes: tuple[Route, ...]
    resource_types: tuple[str, ...]
    #: compartment type -> member type -> parameter codes
    compartments: Mapping[str, Mapping[str, tuple[str, ...]]]
    search: SearchFacts
    version: str
    default_count: int = 20
    max_count: int = 1000
    #: whether /fhir asks for SMART Bearer tokens (AUTH_MODE=smart)
    auth: bool = False

    def __post_init__(self) -> None:
        bad = [t for t in self.resource_types if not _TYPE_NAME.match(t)]
        if bad:  # names end up in paths, ids and $refs
            raise ValueError(f"not FHIR resource type names: {bad!r}")


def _camel(name: str) -> str:
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _tag(route: Route) -> str:
    return _TAGS["operation" if route.interaction == "operation" else route.level]


class _Builder:
    def __init__(self, facts: ApiFacts, title: str, description: str) -> None:
        self.facts = facts
        self.shared = Counter(id(r.handler) for r in facts.routes)
        self.paths: dict[str, dict[str, Any]] = {}
        self.comps = components(facts.default_count, facts.max_count)
        self.info = {"title": title, "version": facts.version, "description": description}

    def operation_id(self, route: Route, *parts: str) -> str:
        name = _camel(route.handler.__name__) + "".join(parts)
        return name + (route.method.capitalize() if self.shared[id(route.handler)] > 1 else "")

    def search(self, params: Sequence[SearchParam]) -> tuple[str, ...]:
        for param in params:
            self.comps["parameters"][component_name(param)] = query_parameter(param)
        return tuple(component_name(p) for p in params)

    def schema(self, name: str) -> str:
        self.comps["schemas"].setdefault(name, resource_schema(name))
        return name

    def add(self, route: Route, place: Place) -> None:
        form = tuple(p.split(".", 1)[1] for p in place.search) + RESULT_QUERY
        place = Place(place.path, place.operation_id, place.tag, place.resource,
                      place.search if shape_of(route).search else (), form,
                      place.extra, place.note)
        answer = operation(route, place)
        if self.facts.auth and route.permission == PUBLIC:
            answer["security"] = []  # the CapabilityStatement needs no token
        self.paths.setdefault(place.path, {})[route.method.lower()] = answer

    def document(self) -> dict[str, Any]:
        used = {op["tags"][0] for item in self.paths.values() for op in item.values()}
        tags = [{"name": n, "description": _TAG_TEXT[n]} for n in _TAG_TEXT if n in used]
        ids = [op["operationId"] for item in self.paths.values() for op in item.values()]
        duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
        if duplicates:
            raise ValueError(f"operationIds used twice: {duplicates}")
        document = prune({"openapi": "3.1.0", "info": self.info, "tags": tags,
                          "externalDocs": {"description": "FHIR R4 RESTful API",
                                           "url": f"{SPEC}http.html"},
                          "paths": self.paths, "components": self.comps})
        if self.facts.auth:
            document["components"]["securitySchemes"] = SECURITY_SCHEMES
            document["security"] = [{"smart": []}, {"bearer": []}]
        return document


def _literal_type(route: Route, types: Sequence[str]) -> str | None:
    first = route.segments[0] if route.segments else ""
    return first if first in types else None


def build_system(facts: ApiFacts) -> dict[str, Any]:
    """The document of every route of the table: generic paths, common parameters."""
    b = _Builder(facts, TITLE, (
        "The FHIR R4 (4.0.1) RESTful API: every route the server answers. Bodies are "
        f"`{FHIR_JSON}` (`application/json` is accepted too; FHIR XML, "
        "`application/fhir+xml`, is accepted and answered too, as `Accept` or `_format` "
        "ask, though only the JSON is described here); errors are OperationOutcome "
        "resources. `{resource_type}` paths list only the parameters every type has: each "
        "type's own document, `/api/openapi/{type}.json` (the selector of `/api/docs`), "
        "has its concrete paths and its search parameters."))
    members = sorted({t for ms in facts.compartments.values() for t in ms}
                     & set(facts.resource_types))
    b.comps["parameters"] |= {
        "resource_type": {"name": "resource_type", "in": "path", "required": True,
                          "description": "A resource type (for a compartment search: "
                          f"one of {len(members)} in the compartment)",
                          "schema": {"enum": list(facts.resource_types)}},
        "compartment": {"name": "compartment", "in": "path", "required": True,
                        "description": "The compartment's type",
                        "schema": {"enum": sorted(facts.compartments)}},
        "_type": {"name": "_type", "in": "query", "required": False,
                  "description": "Comma-separated resource types to search (default: all)",
                  "schema": {"type": "string"}, "examples": {"two": {"value": "Patient,Group"}}},
    }
    common = b.search(facts.search.common())
    for route in facts.routes:
        literal = _literal_type(route, facts.resource_types)
        resource = b.schema(literal) if literal else "Resource"
        multi = route.interaction == "search-system" or route.path.endswith("*")
        b.add(route, Place(route.template, b.operation_id(route), _tag(route), resource,
                           common, extra=("_type",) if multi else ()))
    return b.document()


def build_type(facts: ApiFacts, rtype: str) -> dict[str, Any]:
    """The document of one resource type: its paths, its search parameters."""
    if rtype not in facts.resource_types:
        raise KeyError(rtype)
    b = _Builder(facts, f"{TITLE}: {rtype}", (
        f"The interactions on [{rtype}]({SPEC}{rtype.lower()}.html) resources, with the "
        "search parameters this server answers for it (the whole API is in "
        "`/api/openapi.json`)."))
    resource = b.schema(rtype)
    own = b.search(facts.search.for_type(rtype))
    generic = [r for r in facts.routes if r.level in ("type", "instance")
               and r.resource_type is None]
    literal = [r for r in facts.routes if _literal_type(r, facts.resource_types) == rtype]
    for route in generic + literal:  # a literal route wins over the generic one
        path = route.template.replace("{resource_type}", rtype)
        b.add(route, Place(path, b.operation_id(route, rtype), _tag(route), resource, own))
    for route in (r for r in facts.routes if r.level == "compartment"):
        if route.segments[-1] == "{resource_type}":
            for owner in sorted(facts.compartments):
                if rtype in facts.compartments[owner] and owner in facts.resource_types:
                    path = route.template.replace("{compartment}", owner).replace(
                        "{resource_type}", rtype)
                    b.add(route, Place(path, b.operation_id(route, rtype, "In", owner),
                                       _tag(route), resource, own,
                                       note=f"{rtype} resources in one {owner}'s compartment."))
        elif rtype in facts.compartments:
            common = b.search(facts.search.common())
            path = route.template.replace("{compartment}", rtype)
            b.add(route, Place(path, b.operation_id(route, rtype), _tag(route), "Resource",
                               common, extra=("_type",), note=(
                                   f"Every type in the {rtype} compartment; `_type` narrows "
                                   "them, only common parameters are understood.")))
            b.comps["parameters"]["_type"] = {
                "name": "_type", "in": "query", "required": False,
                "description": f"Comma-separated types of the {rtype} compartment "
                               "(default: all)", "schema": {"type": "string"}}
    return b.document()
