"""The CapabilityStatement: the shipped base in ``capability/`` plus what really works."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fhir_server import __version__
from fhir_server.search.registry import Registry

#: Instance and type interactions every resource type supports.
TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance",
                     "history-type", "create", "search-type")
#: System interactions beside history-system (which the shipped base lists).
SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system")
#: PATCH bodies: JSON Patch, and FHIRPath Patch (a Parameters resource).
PATCH_FORMATS = ("application/json-patch+json", "application/fhir+json")
#: Parameters every type supports, listed once at the rest level.
COMMON = ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source")
SEARCH_DOC = (
    "Search: every parameter listed per type, with chaining, _has, _include/_revinclude "
    "(:iterate, *), _sort on any listed parameter, _count (default 20, at most 1000), "
    "keyset paging through next/previous links, _summary, _elements, and _total: the "
    "default is _total=none (no total); ask for _total=accurate or _total=estimate. "
    "Unknown parameters are ignored (and left out of the self link) unless the request "
    "carries Prefer: handling=strict. Operations: $reindex (POST /fhir/$reindex or "
    "/fhir/[type]/$reindex) runs as a background job whose progress GET /fhir/_jobs/[id] "
    "reports.")


def _params(registry: Registry, rtype: str) -> list[dict[str, Any]]:
    out = []
    for code, param in sorted(registry.params(rtype).items()):
        if code in COMMON or param.status != "active":
            continue
        if param.extract is None and code not in ("_id", "_lastUpdated"):
            continue
        entry: dict[str, Any] = {"name": code, "type": param.type}
        if param.url:
            entry["definition"] = param.url
        if param.description:
            entry["documentation"] = param.description[:500]
        out.append(entry)
    return out


def build_capability(capability_dir: Path, resource_types: Iterable[str],
                     base_url: str | None, registry: Registry) -> dict[str, Any]:
    """The server's CapabilityStatement, from ``CapabilityStatement-server.json``."""
    statement: dict[str, Any] = orjson.loads(
        (capability_dir / "CapabilityStatement-server.json").read_bytes())
    statement["date"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    statement["software"]["version"] = __version__
    if base_url:
        statement["implementation"]["url"] = base_url
    rest = statement["rest"][0]
    rest["documentation"] = f"{rest.get('documentation', '')} {SEARCH_DOC}".strip()
    listed = rest.setdefault("interaction", [])
    listed.extend({"code": code} for code in SYSTEM_INTERACTIONS
                  if {"code": code} not in listed)
    statement["patchFormat"] = list(PATCH_FORMATS)
    any_type = next(iter(sorted(resource_types)))
    rest["searchParam"] = [
        {"name": code, "type": p.type, "definition": p.url}
        for code in COMMON if (p := registry.get(any_type, code)) is not None
    ]
    resources = []
    for name in sorted(resource_types):
        references = sorted(c for c, p in registry.params(name).items()
                            if p.type == "reference")
        entry: dict[str, Any] = {
            "type": name,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{name}",
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "full-support",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "searchInclude": ["*", *(f"{name}:{c}" for c in references)],
            "searchRevInclude": ["*"],
        }
        params = _params(registry, name)
        if params:  # FHIR JSON has no empty arrays
            entry["searchParam"] = params
        resources.append(entry)
    rest["resource"] = resources
    return statement
