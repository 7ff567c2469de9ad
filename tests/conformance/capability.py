"""What a test needs of the server under test, read from its CapabilityStatement.

``@pytest.mark.requires(operation="validate")`` (or ``interaction="create"``,
``interaction=("Patient", "patch")``, ``search=("Patient", "_text")``,
``format="application/fhir+json"``, ``patch_format="application/json-patch+json"``,
``operation=("Patient", "everything")``): the conftest skips the test, naming what is
missing, when the statement does not advertise it. Against our own server nothing is
missing; against a deployment the suite then runs what that deployment offers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the keywords of the ``requires`` marker
KINDS = ("operation", "interaction", "search", "format", "patch_format")


def _rest(statement: Mapping[str, Any]) -> Mapping[str, Any]:
    for rest in statement.get("rest", ()):
        if rest.get("mode") == "server":
            return rest  # type: ignore[no-any-return]
    return {}


def _resource(rest: Mapping[str, Any], rtype: str) -> Mapping[str, Any]:
    for resource in rest.get("resource", ()):
        if resource.get("type") == rtype:
            return resource  # type: ignore[no-any-return]
    return {}


def _split(value: str | tuple[str, str]) -> tuple[str | None, str]:
    return (value[0], value[1]) if isinstance(value, tuple) else (None, value)


def _names(items: Any, key: str) -> set[str]:
    return {str(i.get(key)) for i in items or ()}


def missing(statement: Mapping[str, Any], kind: str,
            value: str | tuple[str, str]) -> str | None:
    """What of ``kind``/``value`` the statement does not advertise (None: all of it)."""
    if kind not in KINDS:
        raise ValueError(f"requires() takes {', '.join(KINDS)}, not {kind!r}")
    if kind in ("format", "patch_format"):
        element = "format" if kind == "format" else "patchFormat"
        listed = set(statement.get(element, ()))
        return None if value in listed else f"the {element} {value!r}"
    rest = _rest(statement)
    rtype, name = _split(value)
    resources = [_resource(rest, rtype)] if rtype else list(rest.get("resource", ()))
    if kind == "operation":
        found = _names(rest.get("operation"), "name") if rtype is None else set()
        for resource in resources:
            found |= _names(resource.get("operation"), "name")
        where = f" on {rtype}" if rtype else ""
        return None if name in found else f"the operation ${name}{where}"
    if kind == "interaction":
        found = _names(rest.get("interaction"), "code") if rtype is None else set()
        for resource in resources:
            found |= _names(resource.get("interaction"), "code")
        where = f" on {rtype}" if rtype else ""
        return None if name in found else f"the interaction {name}{where}"
    found = _names(rest.get("searchParam"), "name")
    for resource in resources:
        found |= _names(resource.get("searchParam"), "name")
    where = f" on {rtype}" if rtype else ""
    return None if name in found else f"the search parameter {name}{where}"


def unmet(statement: Mapping[str, Any], requirements: Mapping[str, Any]) -> list[str]:
    """Each requirement of one ``requires`` marker the statement does not meet."""
    out: list[str] = []
    for kind, value in requirements.items():
        values = value if isinstance(value, list) else [value]
        out += [m for v in values if (m := missing(statement, kind, v)) is not None]
    return out
