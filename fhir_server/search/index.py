"""Resource -> search index rows, for every indexed parameter of its type, and its
full-text row (``text``: narrative and content, see ``search.text``).

Contained resources (search.html 3.1.1.5.5) are indexed too, under the container's
``rid``: the values of each indexed parameter of the contained resource's type, hashed
with :func:`~fhir_server.search.hashing.contained_key` (so plain searches never see
them) and with ``p`` marked by the contained id
(:func:`~fhir_server.search.hashing.contained_row_key`), so that a chain through the
container's ``#id`` reference (``MedicationRequest?medication.code=...``) matches the
rows of that contained resource only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fhir_server.search import composite, reference, string
from fhir_server.search.base import IndexContext, Node, ParamType
from fhir_server.search.fhirpath_ops import roots_of
from fhir_server.search.hashing import contained_key, contained_row_key
from fhir_server.search.kinds import PARAM_TYPES
from fhir_server.search.registry import Registry, SearchParam
from fhir_server.search.text import DEFAULT_CONFIG, text_row

log = logging.getLogger(__name__)

#: Index rows by parameter type (``token``, ``string``, ...), as JSON objects.
IndexRows = dict[str, list[dict[str, Any]]]
#: The same rows as tuples: by parameter type, (column names, rows). What a bulk COPY
#: sends without building a dict per row (``fhir-server import``).
TableRows = dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]
_TEXT_COLUMNS = ("config", "narrative_source", "content_source")


class IndexBuilder:
    """Computes the rows ``fhir_write_index`` stores for a resource."""

    def __init__(self, registry: Registry, bases: Sequence[str] = (),
                 text_config: str = DEFAULT_CONFIG) -> None:
        self._registry = registry
        #: the bases every write treats as local (FHIR_BASE_URL and its aliases)
        self._bases = tuple(b.rstrip("/") for b in bases if b)
        #: the text search configuration of the ``idx_text`` row (SEARCH_TEXT_LANGUAGE)
        self._text_config = text_config
        #: type -> (its parameters, how many, the plan of those indexed): rebuilt when the
        #: registry gives another mapping (it makes new ones when SearchParameters change)
        self._plans: dict[str, tuple[Mapping[str, SearchParam], int, list[_Planned]]] = {}

    def _indexed(self, rtype: str) -> tuple[Mapping[str, SearchParam], list[_Planned]]:
        """The parameters of ``rtype`` and the plan of those that are indexed."""
        params = self._registry.params(rtype)
        found = self._plans.get(rtype)
        if found is None or found[0] is not params or found[1] != len(params):
            found = self._plans[rtype] = (params, len(params), [
                (p, p.p, roots_of(p.extract)) for p in params.values() if p.indexed])
        return params, found[2]

    def rows(self, resource: dict[str, Any], bases: Sequence[str] = ()) -> IndexRows:
        """Every index row of ``resource`` (its type's parameters that are indexed).

        ``bases``: further base URLs references to which are local (the request's own).
        """
        return as_dicts(self.table_rows(resource, bases))

    def table_rows(self, resource: dict[str, Any], bases: Sequence[str] = ()) -> TableRows:
        """The rows of :meth:`rows` as tuples (column names once per type)."""
        out: TableRows = {}
        rtype = resource.get("resourceType", "")
        contained = _contained(resource)
        ctx = IndexContext(tuple(dict.fromkeys((*self._bases,
                                                *(b.rstrip("/") for b in bases if b)))),
                           tuple((cid, c["resourceType"]) for cid, c in contained))
        params, indexed = self._indexed(rtype)
        for param, p, roots in indexed:
            # Most parameters of a type find nothing in a given resource: those whose
            # expression starts with keys the resource lacks are not even run.
            if roots is not None and resource.keys().isdisjoint(roots):
                continue
            try:
                self._param_rows(param, p, resource, out, ctx)
            except Exception:  # odd data must never block a valid write
                log.exception("indexing %s.%s failed", rtype, param.code)
        for cid, inner in contained:
            for param, p, roots in self._indexed(inner["resourceType"])[1]:
                if roots is not None and inner.keys().isdisjoint(roots):
                    continue
                try:
                    self._param_rows(param, p, inner, out, ctx, "#" + cid)
                except Exception:
                    log.exception("indexing contained %s.%s failed", inner["resourceType"],
                                  param.code)
        if "_content" in params or "_text" in params:
            try:
                row = text_row(resource, self._text_config)
            except Exception:
                log.exception("indexing the text of %s failed", rtype)
                row = None
            if row is not None:
                out["text"] = (_TEXT_COLUMNS, [tuple(row[c] for c in _TEXT_COLUMNS)])
        return out

    def _param_rows(self, param: SearchParam, key: int, resource: dict[str, Any],
                    out: TableRows, ctx: IndexContext, local_ref: str | None = None) -> None:
        """Rows of one parameter (``key``: its ``p``); of a contained resource when
        ``local_ref`` (``#id``)."""
        assert param.extract is not None
        nodes = param.extract(resource)
        if not nodes:
            return
        kind = PARAM_TYPES[param.type]
        p = key if local_ref is None else contained_key(key)
        if param.type == "composite":
            comps = [(c.type, _bind(c.extract, resource)) for c in param.components]
            tuples = composite.composite_rows(p, nodes, comps, ctx)
        elif param.type == "string" and string.family_param(param.expression):
            tuples = kind.rows(p, string.as_family(nodes), ctx)
        else:
            tuples = kind.rows(p, nodes, ctx)
        if local_ref is not None:
            marked = contained_row_key(p, local_ref)
            _add(out, kind, [(marked, *t[1:]) for t in tuples])
            return  # (no :identifier rows for contained resources)
        _add(out, kind, tuples)
        if param.type == "reference":
            identifiers = reference.identifier_nodes(nodes)
            if identifiers:
                token = PARAM_TYPES["token"]
                p = reference.identifier_param_key(param.resource_type, param.code)
                _add(out, token, token.rows(p, identifiers, ctx))


def _contained(resource: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The contained resources with an id and a type, by id (the first of a repeated id)."""
    found: dict[str, dict[str, Any]] = {}
    items = resource.get("contained")
    for item in items if isinstance(items, list) else []:
        if (isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]
                and isinstance(item.get("resourceType"), str)):
            found.setdefault(item["id"], item)
    return list(found.items())


def _bind(extract: Any, resource: dict[str, Any]) -> Any:
    def run(value: Any) -> list[Node]:
        result: list[Node] = extract(value, resource)
        return result
    return run


def _add(out: TableRows, kind: ParamType, tuples: list[tuple[Any, ...]]) -> None:
    if not tuples:
        return
    names = _NAMES.get(kind.name)
    if names is None:
        names = _NAMES[kind.name] = ("p", *(c[0] for c in kind.columns))
    if len(tuples[0]) != len(names):  # (one kind's rows all have the same shape)
        raise ValueError(f"{kind.name} rows of {len(tuples[0])} values, not {len(names)}")
    found = out.get(kind.name)
    if found is None:
        out[kind.name] = (names, list(tuples))
    else:
        found[1].extend(tuples)


#: one indexed parameter: itself, its ``p`` and the root keys its expression reads
_Planned = tuple[SearchParam, int, tuple[str, ...] | None]
#: parameter type -> its row's column names (``p`` first)
_NAMES: dict[str, tuple[str, ...]] = {}


def as_dicts(tables: TableRows) -> IndexRows:
    """Tuple rows as the JSON objects ``fhir_write_index`` takes."""
    return {name: [dict(zip(names, row, strict=True)) for row in rows]
            for name, (names, rows) in tables.items()}


def as_tables(index: IndexRows) -> TableRows:
    """JSON-object rows as tuple rows (the keys of all of a type's rows; a key missing
    from a row is NULL, as ``jsonb_populate_recordset`` makes it)."""
    out: TableRows = {}
    for name, rows in index.items():
        if rows:
            names = tuple(dict.fromkeys(k for row in rows for k in row))
            out[name] = (names, [tuple(row.get(k) for k in names) for row in rows])
    return out
