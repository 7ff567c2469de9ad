"""SearchParameters defined through the API: what is checked before one is accepted.

Each is evaluated on every write of its base types, so its FHIRPath expressions (its
own and its components') must be within ``FHIRPATH_MAX_BYTES`` and
``FHIRPATH_MAX_NODES`` and use no costly function (``search.fhirpath_cost``): checked
on every write of a SearchParameter before anything is stored, and again when the
stored ones are loaded into the registry (those stored before these limits, or by the
importer, are ignored there when over them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fhir_server.errors import Issue, Unprocessable
from fhir_server.search.fhirpath_cost import ExpressionRefused, check
from fhir_server.settings import Settings


def expressions(resource: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Each FHIRPath expression of a SearchParameter with the element holding it."""
    expression = resource.get("expression")
    if isinstance(expression, str):
        yield "SearchParameter.expression", expression
    components = resource.get("component")
    for n, component in enumerate(components if isinstance(components, list) else []):
        if isinstance(component, dict) and isinstance(component.get("expression"), str):
            yield f"SearchParameter.component[{n}].expression", component["expression"]


def check_costs(settings: Settings, resource: dict[str, Any]) -> None:
    """Unprocessable (``too-costly``, or ``invalid`` for no FHIRPath) naming each
    expression of the SearchParameter ``resource`` that is refused."""
    issues: list[Issue] = []
    for element, expression in expressions(resource):
        try:
            check(expression, settings.fhirpath_max_bytes, settings.fhirpath_max_nodes)
        except ExpressionRefused as exc:
            code = "too-costly" if exc.too_costly else "invalid"
            issues.append(Issue(code, f"{element} {exc}", expression=(element,)))
    if issues:
        raise Unprocessable(issues[0].diagnostics, issues, code=issues[0].code)


def refusal(settings: Settings, resource: dict[str, Any]) -> str | None:
    """Why a stored SearchParameter is not loaded into the registry, or None."""
    try:
        check_costs(settings, resource)
    except Unprocessable as exc:
        return exc.diagnostics
    return None
