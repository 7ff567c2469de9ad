"""capabilities: the CapabilityStatement, from the shipped base in ``capability/``, the
route table (interactions and operations) and the search registry (parameters)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fhir_server import __version__
from fhir_server.api.definitions import operation_url
from fhir_server.api.describe import describe
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.router import Route
from fhir_server.audit import policy
from fhir_server.auth.discovery import rest_security
from fhir_server.errors import BadRequest
from fhir_server.paths import data_dir
from fhir_server.search.registry import Registry
from fhir_server.service.context import ServiceContext

#: TypeRestfulInteraction codes (a route with one of them adds it to every type).
TYPE_CODES = ("read", "vread", "update", "patch", "delete", "history-instance",
              "history-type", "create", "search-type")
#: SystemRestfulInteraction codes by route interaction, in the specification's order.
SYSTEM_CODES = {"transaction/batch": ("transaction", "batch"),
                "history-system": ("history-system",), "search-system": ("search-system",)}
_SYSTEM_ORDER = ("transaction", "batch", "delete", "history-system", "search-system")
#: PATCH bodies: JSON Patch, and FHIRPath Patch (a Parameters resource).
PATCH_FORMATS = ("application/json-patch+json", "application/fhir+json")
#: Parameters every type supports, listed once at the rest level.
COMMON = ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source")
SEARCH_DOC = (
    "Search: every parameter listed per type, with chaining, _has, _include/_revinclude "
    "(:iterate, *), _sort on any listed parameter, _count (default 20, at most 1000), "
    "keyset paging through next/previous links, _text (the narrative) and _content (the "
    "resource's text) as full-text searches, _summary, _elements, and _total: the "
    "default is _total=none (no total); ask for _total=accurate or _total=estimate. "
    "Unknown parameters are ignored (and left out of the self link) unless the request "
    "carries Prefer: handling=strict. Compartment searches: [base]/Patient/[id]/[type] "
    "and [base]/Patient/[id]/* for every type in the compartment.")

#: ``metadata?mode=``: the whole statement (also for ``normative``: every element of an
#: R4 CapabilityStatement is normative), or ``terse``, the subset below.
MODES = ("full", "normative", "terse")
#: What ``mode=terse`` keeps: the required elements (status, date, kind, fhirVersion,
#: format, rest.mode, rest.resource.type), and software and implementation, without
#: which the statement would break invariant cpb-2 (description, software or
#: implementation), and the identity a client caches it under.
_TERSE = ("resourceType", "id", "url", "name", "status", "date", "kind", "software",
          "implementation", "fhirVersion", "format")
_SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
              "code": "SUBSETTED"}

#: The R4 resource types that are no DomainResource (so have no ``text``).
_NOT_DOMAIN_RESOURCES = frozenset({"Binary", "Bundle", "Parameters"})

_cache: dict[tuple[str, int, int], dict[str, Any]] = {}


def _params(registry: Registry, rtype: str) -> list[dict[str, Any]]:
    out = []
    for code, param in sorted(registry.params(rtype).items()):
        if code in COMMON or param.status != "active":
            continue
        if code == "_text" and rtype in _NOT_DOMAIN_RESOURCES:
            continue  # no narrative to search
        # these are answered from the resource row or idx_text, not by an extractor
        if param.extract is None and code not in ("_id", "_lastUpdated", "_text", "_content"):
            continue
        entry: dict[str, Any] = {"name": code, "type": param.type}
        if param.url:
            entry["definition"] = param.url
        text = describe(param)
        if text:
            entry["documentation"] = text
        out.append(entry)
    return out


def _operations(routes: Iterable[Route], levels: Sequence[str],
                base: str) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for route in routes:
        op = route.operation
        if op is not None and route.level in levels and op.name not in seen:
            seen[op.name] = {"name": op.name, "definition": operation_url(op, base),
                             "documentation": op.documentation}
    return list(seen.values())


def _reverse_references(registry: Registry, resource_types: Iterable[str]
                        ) -> dict[str, list[str]]:
    """For each type, the ``Type:param`` reference parameters that can point at it (its
    ``_revinclude`` values)."""
    out: dict[str, list[str]] = {}
    for source in sorted(resource_types):
        for code, param in sorted(registry.params(source).items()):
            if param.type != "reference" or param.status != "active":
                continue
            for target in param.targets:
                out.setdefault(target, []).append(f"{source}:{code}")
    return out


def _resource(name: str, routes: Sequence[Route], registry: Registry, base: str,
              reverse: Mapping[str, list[str]],
              profiles: Sequence[str]) -> dict[str, Any]:
    typed = [r for r in routes if r.level in ("type", "instance")
             and r.resource_type in (None, name)]
    kinds = {r.interaction for r in typed} - policy.refused(name)  # AuditEvent: no changes
    references = sorted(c for c, p in registry.params(name).items()
                        if p.type == "reference" and p.status == "active")
    entry: dict[str, Any] = {
        "type": name,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{name}",
        **({"supportedProfile": list(profiles)} if profiles else {}),
        "interaction": [{"code": code} for code in TYPE_CODES if code in kinds],
        "versioning": "versioned-update",
        "readHistory": "vread" in kinds,
        "updateCreate": "update" in kinds,
        "conditionalCreate": "create" in kinds,
        "conditionalRead": "full-support" if "read" in kinds else "not-supported",
        "conditionalUpdate": "conditional-update" in kinds,
        "conditionalDelete": "single" if "conditional-delete" in kinds else "not-supported",
        "searchInclude": ["*", *(f"{name}:{c}" for c in references)],
        "searchRevInclude": ["*", *reverse.get(name, ())],
    }
    params = _params(registry, name)
    if params:  # FHIR JSON has no empty arrays
        entry["searchParam"] = params
    operations = _operations(typed, ("type", "instance"), base)
    if operations:
        entry["operation"] = operations
    return entry


def build_capability(capability_dir: Path, resource_types: Iterable[str], base_url: str,
                     registry: Registry, routes: Sequence[Route],
                     compartments: Iterable[str] = (),
                     profiles: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The server's CapabilityStatement, from ``CapabilityStatement-server.json``;
    ``profiles``: the known profiles by canonical URL (each with its ``type``)."""
    statement: dict[str, Any] = orjson.loads(
        (capability_dir / "CapabilityStatement-server.json").read_bytes())
    statement["date"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    statement["software"]["version"] = __version__
    if base_url:
        statement["implementation"]["url"] = base_url
    rest = statement["rest"][0]
    rest["documentation"] = f"{rest.get('documentation', '')} {SEARCH_DOC}".strip()
    codes = {c for r in routes if r.level == "system" for c in SYSTEM_CODES.get(r.interaction, ())}
    rest["interaction"] = [{"code": c} for c in _SYSTEM_ORDER if c in codes]
    if any(r.interaction == "patch" for r in routes):
        statement["patchFormat"] = list(PATCH_FORMATS)
    any_type = next(iter(sorted(resource_types)))
    rest["searchParam"] = [
        {"name": code, "type": p.type, "definition": p.url}
        for code in COMMON if (p := registry.get(any_type, code)) is not None
    ]
    reverse = _reverse_references(registry, resource_types)
    by_type: dict[str, list[str]] = {}
    for url, profile in sorted((profiles or {}).items()):
        by_type.setdefault(profile.type, []).append(url)
    rest["resource"] = [_resource(name, routes, registry, base_url, reverse,
                                  by_type.get(name, ()))
                        for name in sorted(resource_types)]
    operations = _operations(routes, ("system",), base_url)
    if operations:
        rest["operation"] = operations
    if any(r.level == "compartment" for r in routes) and compartments:
        rest["compartment"] = [f"http://hl7.org/fhir/CompartmentDefinition/{c.lower()}"
                               for c in sorted(compartments)]
    return statement


def terse(statement: dict[str, Any]) -> dict[str, Any]:
    """``mode=terse``: the statement's required elements and each resource's type,
    tagged SUBSETTED as any subset is (search.html#summary)."""
    out = {k: statement[k] for k in _TERSE if k in statement}
    out["meta"] = {"tag": [_SUBSETTED]}
    out["rest"] = [{"mode": rest["mode"],
                    **({"resource": [{"type": r["type"]} for r in rest["resource"]]}
                       if rest.get("resource") else {})}
                   for rest in statement["rest"]]
    return out


def _mode(request: FhirRequest) -> str:
    modes = [v for n, v in request.pairs if n == "mode"]
    if len(modes) > 1:
        raise BadRequest("metadata takes mode once")
    mode = modes[0] if modes else "full"
    if mode not in MODES:
        raise BadRequest(f"unknown mode {mode!r} for metadata: full, normative or terse "
                         "(terminology: this server publishes no TerminologyCapabilities)")
    return mode


async def capabilities(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """The CapabilityStatement (built once per base URL and registry), whole or terse."""
    assert request.router is not None
    mode = _mode(request)
    key = (ctx.base_url, id(ctx.search.registry), id(request.router))
    statement = _cache.get(key)
    if statement is None:
        statement = build_capability(
            data_dir("capability"), ctx.resource_types, ctx.base_url, ctx.search.registry,
            request.router.routes, ctx.compartments, ctx.validator.profiles)
        if ctx.settings.auth_mode == "smart":
            statement["rest"][0]["security"] = rest_security(
                ctx.base_url, bool(ctx.settings.cors_origin_list))
        _cache[key] = statement
    return FhirResponse(200, terse(statement) if mode == "terse" else statement)
