"""The label values of a request: its route template and FHIR interaction.

Labels must have a small, fixed set of values, so everything here works on the route
*template* (``/fhir/{resource_type}/{id}``), never on the raw path. FHIR requests carry
the route the router matched (its template and interaction name, from the route table);
other requests the Starlette route's template and the interaction ``other``.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from starlette.types import Scope

#: Scope key of the FHIR route the router matched (an ``api.router.Route``).
ROUTE_KEY: Final = "fhir_server.route"
#: Label value of requests that matched no route (their raw path is never a label).
UNMATCHED: Final = "unmatched"
#: Label value when there is no (or no acceptable) resource type.
NO_TYPE: Final = "-"
#: Label value of a ``{resource_type}`` path value that is not a known type.
UNKNOWN_TYPE: Final = "unknown"
#: Interaction of ``POST /fhir`` before the handler has told the Bundle's type.
BUNDLE: Final = "transaction/batch"

#: Methods that become label values as they are; anything else is ``OTHER``.
KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: Interactions counted by ``fhir_searches_total``.
SEARCHES: Final = frozenset({"search-type", "search-system", "search-compartment"})


class RouteInfo(NamedTuple):
    """What the middleware needs to know about a request's route."""

    #: the ``route`` label: the template, or :data:`UNMATCHED`.
    route: str
    #: the ``interaction`` label (``create`` may still become ``conditional-create``).
    interaction: str
    #: whether the template has a ``{resource_type}`` parameter.
    typed: bool


def classify(scope: Scope) -> RouteInfo:
    """The route label, interaction and typed-ness of a finished request."""
    route = scope.get(ROUTE_KEY)
    if route is not None:
        template: str = route.template
        return RouteInfo(template, route.interaction, "{resource_type}" in template)
    starlette_route = scope.get("route")
    path = getattr(starlette_route, "path", None) if starlette_route is not None else None
    if not isinstance(path, str):
        return RouteInfo(UNMATCHED, "other", False)
    return RouteInfo(path, "other", "{resource_type}" in path)
