"""The search-parameter registry: SearchParameter resources -> what each type can search.

Sources, in order (a later definition of the same type and code replaces an earlier
one): every ``*.json`` in the ``search/`` data folder (Bundles of SearchParameters or
single SearchParameters; the official R4 set ships there), then SearchParameter
resources stored through the API (see ``fhir_server.search.custom``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

from fhir_server.search.base import Node
from fhir_server.search.hashing import param_key

#: Parameters answered from the resource table's own columns, never indexed.
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})
#: Types with an index table.
INDEXED_TYPES = frozenset({"token", "string", "date", "number", "quantity", "reference",
                           "uri", "composite"})

Status = Literal["active", "building"]


@dataclass(frozen=True)
class Component:
    """One component of a composite parameter: its type and its extractor."""

    type: str
    expression: str
    extract: Callable[[Any, dict[str, Any]], list[Node]]


@dataclass(frozen=True)
class SearchParam:
    """One search parameter as it applies to one resource type."""

    code: str
    type: str
    resource_type: str
    url: str
    expression: str | None
    targets: tuple[str, ...] = ()
    modifiers: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    extract: Callable[[dict[str, Any]], list[Node]] | None = field(default=None, compare=False)
    status: Status = "active"
    description: str = ""

    @property
    def p(self) -> int:
        """The ``p`` key of this parameter's index rows."""
        return param_key(self.resource_type, self.code)

    @property
    def indexed(self) -> bool:
        """Whether rows are written for this parameter."""
        return (self.extract is not None and self.type in INDEXED_TYPES
                and self.code not in COLUMN_PARAMS)


class ExtractorLike(Protocol):
    """What the registry needs from ``fhir_server.search.fhirpath.Extractor``."""

    def compile(self, expression: str, resource_type: str
                ) -> Callable[[dict[str, Any]], list[Node]] | None:
        """Compile an expression for one resource type (None: no part applies)."""
        ...

    def compile_component(self, expression: str, context_type_path: str
                          ) -> Callable[[Any, dict[str, Any]], list[Node]]:
        """Compile a composite component's expression relative to its context."""
        ...


def read_search_parameters(folder: Path) -> list[dict[str, Any]]:
    """Every SearchParameter in the ``*.json`` files of ``folder`` (Bundles or single)."""
    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")):
        data = orjson.loads(path.read_bytes())
        if data.get("resourceType") == "Bundle":
            found += [e["resource"] for e in data.get("entry", [])
                      if e.get("resource", {}).get("resourceType") == "SearchParameter"]
        elif data.get("resourceType") == "SearchParameter":
            found.append(data)
    return found


class Registry:
    """Search parameters per resource type, with compiled value extractors."""

    def __init__(self, resource_types: Iterable[str], extractor: ExtractorLike) -> None:
        self._types = frozenset(resource_types)
        self._extractor = extractor
        self._by_type: dict[str, dict[str, SearchParam]] = {t: {} for t in self._types}
        self._by_url: dict[str, dict[str, Any]] = {}
        #: the shipped parameters, restored before custom ones are laid over them
        self._base: dict[str, dict[str, SearchParam]] | None = None

    @classmethod
    def load(cls, folder: Path, resource_types: Iterable[str],
             extractor: ExtractorLike) -> Registry:
        """The registry of every SearchParameter in ``folder``."""
        registry = cls(resource_types, extractor)
        registry.add_all(read_search_parameters(folder))
        return registry

    def add_all(self, resources: Iterable[dict[str, Any]],
                status: Status = "active") -> None:
        """Add SearchParameter resources (composites after the parameters they use)."""
        resources = list(resources)
        for resource in resources:
            if resource.get("url"):
                self._by_url[resource["url"]] = resource
        for resource in sorted(resources, key=lambda r: r.get("type") == "composite"):
            self.add(resource, status)

    def add(self, resource: dict[str, Any], status: Status = "active") -> list[SearchParam]:
        """Add one SearchParameter for each of its base types; returns what was added."""
        added: list[SearchParam] = []
        code = resource.get("code")
        ptype = resource.get("type")
        if not code or not ptype:
            return added
        if resource.get("url"):
            self._by_url[resource["url"]] = resource
        bases = resource.get("base", [])
        types: set[str] = set()
        for base in bases:
            # Resource and DomainResource parameters apply to every concrete type.
            types |= set(self._types) if base in ("Resource", "DomainResource") else {base}
        for rtype in sorted(types & self._types):
            param = self._compile(resource, rtype, status)
            if param is not None:
                self._by_type[rtype][code] = param
                added.append(param)
        return added

    def _compile(self, resource: dict[str, Any], rtype: str,
                 status: Status) -> SearchParam | None:
        expression = resource.get("expression")
        extract = None
        if expression and resource["code"] not in COLUMN_PARAMS:
            extract = self._extractor.compile(expression, rtype)
            if extract is None:
                return None
        components: list[Component] = []
        if resource["type"] == "composite":
            context = expression.split("|")[0].strip() if expression else rtype
            for comp in resource.get("component", []):
                definition = self._by_url.get(comp.get("definition", ""))
                if definition is None:
                    return None
                components.append(Component(
                    definition["type"], comp["expression"],
                    self._extractor.compile_component(comp["expression"], context)))
        return SearchParam(
            code=resource["code"], type=resource["type"], resource_type=rtype,
            url=resource.get("url", ""), expression=expression,
            targets=tuple(resource.get("target", ())),
            modifiers=tuple(resource.get("modifier", ())), components=tuple(components),
            extract=extract, status=status, description=resource.get("description", ""),
        )

    def freeze_base(self) -> None:
        """Remember the current parameters as the shipped set custom ones cannot replace."""
        self._base = {t: dict(ps) for t, ps in self._by_type.items()}

    def set_custom(self, resources: Iterable[tuple[dict[str, Any], Status]]) -> list[str]:
        """Replace the API-defined parameters; returns those refused (shipped codes)."""
        if self._base is None:
            self.freeze_base()
        assert self._base is not None
        fresh = {t: dict(ps) for t, ps in self._base.items()}
        refused: list[str] = []
        self._by_type = fresh
        for resource, status in resources:
            code = resource.get("code", "")
            bases = resource.get("base", [])
            if any(code in self._base.get(b, {}) for b in bases) or code.startswith("_"):
                refused.append(resource.get("url", code))
                continue
            try:
                self.add(resource, status)
            except Exception:  # an expression we cannot compile: refuse that one only
                refused.append(resource.get("url", code))
        return refused

    def params(self, resource_type: str) -> Mapping[str, SearchParam]:
        """The parameters of a resource type by code."""
        return self._by_type.get(resource_type, {})

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        """One parameter, or None."""
        return self._by_type.get(resource_type, {}).get(code)

    @property
    def resource_types(self) -> frozenset[str]:
        """Every resource type the registry knows."""
        return self._types
