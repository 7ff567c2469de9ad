"""Search index rows of the server's own AuditEvents, cheap enough for every read.

Every request writes an event, so indexing it must cost little next to the request
itself; the general :class:`IndexBuilder` spends ~160 us on one event, as much as the
whole read it records. But most of an event repeats from one request to the next (the
same client, user, server, type, action and outcome; the same entity types and roles):
only ``recorded``, the entities' ``what`` and ``outcomeDesc`` vary. So the event is
indexed in pieces with the general builder (the same extraction and row code, hence the
same rows a ``$reindex`` computes), the repeating pieces from a cache; rows are merged
without duplicates and the pieces' text joined into one ``idx_text`` row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson

from fhir_server.search.index import IndexBuilder, IndexRows
from fhir_server.search.registry import Registry, SearchParam
from fhir_server.search.text import DEFAULT_CONFIG

#: the elements of an event that vary per request (indexed every time)
_VARYING = frozenset({"id", "recorded", "entity", "outcomeDesc"})
#: distinct repeating pieces kept (a full cache is emptied: one-off pieces, e.g. search
#: entities holding their query, must not grow it without bound)
CACHE_SIZE = 4096


class _Only:
    """A registry seen through: only the given AuditEvent parameters."""

    def __init__(self, registry: Registry, codes: frozenset[str]) -> None:
        params = registry.params("AuditEvent")
        self._params = {c: p for c, p in params.items() if c in codes}

    def params(self, resource_type: str) -> Mapping[str, SearchParam]:
        return self._params if resource_type == "AuditEvent" else {}


def varying_codes(registry: Registry) -> frozenset[str]:
    """The AuditEvent parameters that can read a varying element (and ``_content``,
    whose text row the varying piece adds to)."""
    return frozenset(c for c, p in registry.params("AuditEvent").items()
                     if c == "_content" or (p.expression or "").find("entity") >= 0
                     or "recorded" in (p.expression or ""))


class EventIndexer:
    """Index rows of an AuditEvent, equal (as sets) to ``IndexBuilder.rows``'s.

    With the ``registry`` (and the indexer's bases and text configuration) the varying
    piece is indexed by the parameters that can read it only (a few instead of all 27).
    """

    def __init__(self, indexer: IndexBuilder, registry: Registry | None = None,
                 bases: Sequence[str] = (), text_config: str = DEFAULT_CONFIG) -> None:
        self._indexer = indexer
        self._varying = indexer if registry is None else IndexBuilder(
            cast(Registry, _Only(registry, varying_codes(registry))), bases, text_config)
        self._cache: dict[bytes, IndexRows] = {}

    def _cached(self, piece: dict[str, Any]) -> IndexRows:
        key = orjson.dumps(piece)
        rows = self._cache.get(key)
        if rows is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            rows = self._cache[key] = self._indexer.rows(piece)
        return rows

    def rows(self, event: dict[str, Any]) -> IndexRows:
        """Every index row of ``event`` (an AuditEvent as the builder makes them)."""
        parts = [self._cached({k: v for k, v in event.items() if k not in _VARYING})]
        varying: dict[str, Any] = {"resourceType": "AuditEvent"}
        whats: list[dict[str, Any]] = []
        for entity in event.get("entity", ()):
            rest = {k: v for k, v in entity.items() if k != "what"}
            if rest:
                parts.append(self._cached({"resourceType": "AuditEvent", "entity": [rest]}))
            if "what" in entity:
                whats.append({"what": entity["what"]})
        if whats:
            varying["entity"] = whats
        for name in ("recorded", "outcomeDesc"):
            if name in event:
                varying[name] = event[name]
        parts.append(self._varying.rows(varying))
        return merge(parts)


def merge(parts: list[IndexRows]) -> IndexRows:
    """The union of index rows (each row once); text rows joined into one."""
    out: IndexRows = {}
    seen: set[tuple[Any, ...]] = set()
    texts: list[str] = []
    config: Any = None
    for part in parts:
        for kind, rows in part.items():
            if kind == "text":
                for row in rows:
                    config = row["config"]
                    if row.get("content_source"):
                        texts.append(row["content_source"])
                continue
            for row in rows:
                key = (kind, *row.values())
                if key not in seen:
                    seen.add(key)
                    out.setdefault(kind, []).append(row)
    if texts:
        out["text"] = [{"config": config, "narrative_source": None,
                        "content_source": "\n".join(texts)}]
    return out
