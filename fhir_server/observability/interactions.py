"""Naming a request's FHIR interaction from its method and route template.

Labels must have a small, fixed set of values, so everything here works on the route
*template* (``/fhir/{resource_type}/{id}``), never on the raw path.
"""

from __future__ import annotations

from typing import Final, NamedTuple

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

#: Every value the ``interaction`` label can take.
INTERACTIONS: Final = frozenset({
    "read", "vread", "update", "patch", "delete", "create", "search-type",
    "search-system", "search-compartment", "history-instance", "history-type",
    "history-system", "capabilities", "transaction", "batch", BUNDLE, "operation",
    "conditional-create", "conditional-update", "conditional-patch",
    "conditional-delete", "other",
})

#: Interactions counted by ``fhir_searches_total``.
SEARCHES: Final = frozenset({"search-type", "search-system", "search-compartment"})

_READS = frozenset({"GET", "HEAD"})
# Segment placeholders of a normalised template (see _shape).
_T, _I, _V, _P = "{T}", "{I}", "{V}", "{P}"
_PARAMS = {"{resource_type}": _T, "{id}": _I, "{vid}": _V}

# (shape of the segments after /fhir, method) -> interaction.
_TABLE: dict[tuple[tuple[str, ...], str], str] = {
    ((), "GET"): "search-system",
    ((), "POST"): BUNDLE,
    (("_search",), "POST"): "search-system",
    (("_history",), "GET"): "history-system",
    (("metadata",), "GET"): "capabilities",
    ((_T,), "GET"): "search-type",
    ((_T,), "POST"): "create",
    ((_T,), "PUT"): "conditional-update",
    ((_T,), "PATCH"): "conditional-patch",
    ((_T,), "DELETE"): "conditional-delete",
    ((_T, "_search"), "POST"): "search-type",
    ((_T, "_history"), "GET"): "history-type",
    ((_T, _I), "GET"): "read",
    ((_T, _I), "PUT"): "update",
    ((_T, _I), "PATCH"): "patch",
    ((_T, _I), "DELETE"): "delete",
    ((_T, _I, "_history"), "GET"): "history-instance",
    ((_T, _I, "_history", _V), "GET"): "vread",
    ((_P, _I, _T), "GET"): "search-compartment",
}


class RouteInfo(NamedTuple):
    """What the middleware needs to know about one (method, route template) pair."""

    #: the ``route`` label: the template, or :data:`UNMATCHED`.
    route: str
    #: the ``interaction`` label (``create`` may still become ``conditional-create``).
    interaction: str
    #: whether the template has a ``{resource_type}`` parameter.
    typed: bool


def _shape(template: str) -> tuple[str, ...] | None:
    """The segments after ``/fhir`` with parameters replaced by placeholders, or None."""
    parts = [p for p in template.split("/") if p]
    if not parts or parts[0] != "fhir":
        return None
    return tuple(_PARAMS.get(p, _P if p.startswith("{") else p) for p in parts[1:])


def classify(method: str, template: str | None) -> RouteInfo:
    """The route label, interaction and typed-ness of a request.

    ``template`` is the matched route's path template (None when no route matched).
    ``HEAD`` counts as ``GET``. Any segment starting with ``$`` is an ``operation``;
    templates outside ``/fhir`` (health, metrics, docs) and unknown shapes are ``other``.
    """
    if template is None:
        return RouteInfo(UNMATCHED, "other", False)
    typed = "{resource_type}" in template
    shape = _shape(template)
    if shape is None:
        return RouteInfo(template, "other", typed)
    if any(seg.startswith("$") for seg in shape):
        return RouteInfo(template, "operation", typed)
    key_method = "GET" if method in _READS else method
    return RouteInfo(template, _TABLE.get((shape, key_method), "other"), typed)
