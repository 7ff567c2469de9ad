"""Resource -> search index rows, for every indexed parameter of its type."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fhir_server.search import composite, reference
from fhir_server.search.base import IndexType, Node, SearchContext
from fhir_server.search.hashing import param_key
from fhir_server.search.registry import Registry, SearchParam

log = logging.getLogger(__name__)

#: Index rows by table short name (``token``, ``string``, ...), as JSON objects.
IndexRows = dict[str, list[dict[str, Any]]]


class IndexBuilder:
    """Computes the rows ``fhir_write_index`` stores for a resource."""

    def __init__(self, registry: Registry, kinds: Mapping[str, IndexType],
                 ctx: SearchContext) -> None:
        self._registry = registry
        self._kinds = kinds
        self._ctx = ctx

    def rows(self, resource: dict[str, Any]) -> IndexRows:
        """Every index row of ``resource`` (its type's parameters that are indexed)."""
        out: IndexRows = {}
        rtype = resource.get("resourceType", "")
        for param in self._registry.params(rtype).values():
            if not param.indexed:
                continue
            try:
                self._param_rows(param, resource, out)
            except Exception:  # odd data must never block a valid write
                log.exception("indexing %s.%s failed", rtype, param.code)
        return out

    def _param_rows(self, param: SearchParam, resource: dict[str, Any], out: IndexRows) -> None:
        assert param.extract is not None
        nodes = param.extract(resource)
        if not nodes:
            return
        kind = self._kinds[param.type]
        if param.type == "composite":
            comps = [(c.type, _bind(c.extract, resource)) for c in param.components]
            tuples = composite.composite_rows(param.p, nodes, comps, self._ctx)
        else:
            tuples = kind.rows(param.p, nodes, self._ctx)
        _add(out, kind, tuples)
        if param.type == "reference":
            identifiers = reference.identifier_nodes(nodes)
            if identifiers:
                token = self._kinds["token"]
                p = param_key(param.resource_type, f"{param.code}:identifier")
                _add(out, token, token.rows(p, identifiers, self._ctx))


def _bind(extract: Any, resource: dict[str, Any]) -> Any:
    def run(value: Any) -> list[Node]:
        result: list[Node] = extract(value, resource)
        return result
    return run


def _add(out: IndexRows, kind: IndexType, tuples: list[tuple[Any, ...]]) -> None:
    if not tuples:
        return
    names = ("p", *(c[0] for c in kind.columns))
    short = kind.table.removeprefix("idx_")
    out.setdefault(short, []).extend(dict(zip(names, t, strict=True)) for t in tuples)
