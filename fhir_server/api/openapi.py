"""The OpenAPI 3.1 document of the FHIR API, generated from the route table."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from fhir_server.api.router import Route
from fhir_server.service.context import ServiceContext

FHIR_JSON = "application/fhir+json"


def _operation(route: Route, rtype: str | None) -> dict[str, Any]:
    name = route.interaction.replace("/", "-")
    op_id = f"{name}{rtype or ''}{route.method.capitalize()}{abs(hash(route.path)) % 1000}"
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
              for p in ("id", "vid", "compartment", "job_id", "resource_type")
              if "{" + p + "}" in route.path and not (p == "resource_type" and rtype)]
    op: dict[str, Any] = {"operationId": op_id, "summary": route.summary,
                          "tags": [rtype or "System"], "parameters": params,
                          "responses": {"default": {"description": "A FHIR resource",
                                                    "content": {FHIR_JSON: {}}}}}
    if route.method in ("POST", "PUT", "PATCH"):
        op["requestBody"] = {"content": {FHIR_JSON: {}}}
    return op


def build_openapi(routes: Sequence[Route], resource_types: Sequence[str], *,
                  version: str) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` for ``resource_types``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        typed = "{resource_type}" in route.path and route.level != "compartment"
        for rtype in (resource_types if typed else [None]):
            path = route.template.replace("{resource_type}", rtype) if rtype else route.template
            paths.setdefault(path, {})[route.method.lower()] = _operation(route, rtype)
    return {"openapi": "3.1.0", "info": {"title": "FHIR R4 Server", "version": version},
            "paths": paths}


def openapi_provider(routes: Sequence[Route], ctx: ServiceContext, *,
                     version: str) -> Callable[[], bytes]:
    """A callable building the document's JSON once."""
    types = sorted(ctx.resource_types)

    @functools.cache
    def get_openapi() -> bytes:
        return orjson.dumps(build_openapi(routes, types, version=version))

    return get_openapi
