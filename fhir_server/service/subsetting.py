"""``_summary`` and ``_elements``: pure functions that subset one resource.

Both keep ``resourceType``, ``id``, ``meta`` and the resource's mandatory top-level
elements, and tag the result ``SUBSETTED`` when anything was removed (as the FHIR
specification asks, so that a client does not mistake the subset for the whole). The
input resource is never modified.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhir_server.definitions import ALWAYS_KEPT, Definitions
from fhir_server.errors import BadRequest

SUBSETTED_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
SUBSETTED_CODE = "SUBSETTED"
SUMMARY_MODES = ("true", "text", "data", "false")

_BASE = ("resourceType", *ALWAYS_KEPT)


def _json_names(definitions: Definitions, path: str, element_names: Iterable[str]) -> set[str]:
    """JSON property names (choices expanded, ``_x`` siblings) of elements under ``path``."""
    children = definitions.children(path)
    out: set[str] = set()
    for name in element_names:
        info = children.get(name)
        for json_name in info.json_names() if info is not None else (name,):
            out.update((json_name, "_" + json_name))
    return out


def _tagged(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` with the SUBSETTED tag in ``meta.tag`` (added once, meta placed early)."""
    meta = dict(resource.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(t.get("system") == SUBSETTED_SYSTEM and t.get("code") == SUBSETTED_CODE
               for t in tags if isinstance(t, dict)):
        tags.append({"system": SUBSETTED_SYSTEM, "code": SUBSETTED_CODE})
    meta["tag"] = tags
    if "meta" in resource:
        return {k: (meta if k == "meta" else v) for k, v in resource.items()}
    # Keep the conventional order: resourceType, id, meta, then the rest.
    head: dict[str, Any] = {k: resource[k] for k in ("resourceType", "id") if k in resource}
    return {**head, "meta": meta, **{k: v for k, v in resource.items() if k not in head}}


def _keep_top(resource: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    """Keep only the top-level properties in ``keep``; tag if anything was dropped."""
    kept = {k: v for k, v in resource.items() if k in keep}
    return kept if len(kept) == len(resource) else _tagged(kept)


class _SummaryFilter:
    """Keeps summary (and mandatory) elements, recursing into backbone elements."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self.removed = False

    def object(self, value: dict[str, Any], path: str, extra: set[str]) -> dict[str, Any]:
        """The summary of one object whose elements are defined under ``path``."""
        props = self.definitions.properties(path)
        out: dict[str, Any] = {}
        for key, item in value.items():
            info = props.get(key)
            if key in extra:
                out[key] = item
            elif info is None or not (info.is_summary or info.is_mandatory):
                self.removed = True
            elif info.is_backbone and not key.startswith("_"):
                filtered = self.element(item, info.path)
                if filtered is None:
                    self.removed = True
                else:
                    out[key] = filtered
            else:
                out[key] = item
        return out

    def element(self, value: Any, path: str) -> Any:
        """Filter a backbone element value (object or array of them); None when empty."""
        if isinstance(value, list):
            items = [f for f in (self.element(v, path) for v in value) if f is not None]
            if len(items) != len(value):
                self.removed = True
            return items or None
        if not isinstance(value, dict):
            return value
        filtered = self.object(value, path, set())
        return filtered or None


def summarize(resource: dict[str, Any], mode: str, definitions: Definitions) -> dict[str, Any]:
    """Apply ``_summary=mode`` to one resource.

    ``true``: summary elements (``isSummary`` in the base definition, recursively into
    backbone elements), plus ``resourceType``, ``id``, ``meta`` and mandatory elements;
    ``text``: ``text``, ``id``, ``meta`` and mandatory top-level elements; ``data``:
    everything but ``text``; ``false``: the resource unchanged (the same object).
    ``count`` only makes sense for searches and, like any other value, raises
    :class:`~fhir_server.errors.BadRequest`.
    """
    if mode not in SUMMARY_MODES:
        raise BadRequest(f"invalid _summary value {mode!r}: expected one of "
                         f"{', '.join(SUMMARY_MODES)}")
    if mode == "false":
        return resource
    if mode == "data":
        return _keep_top(resource, set(resource) - {"text", "_text"})
    resource_type = str(resource.get("resourceType", ""))
    mandatory = _json_names(definitions, resource_type,
                            definitions.mandatory_elements(resource_type))
    if mode == "text":
        return _keep_top(resource, {*_BASE, "text", *mandatory})
    summary = _SummaryFilter(definitions)
    kept = summary.object(resource, resource_type, {*_BASE, *mandatory})
    return _tagged(kept) if summary.removed else kept


def select_elements(resource: dict[str, Any], names: list[str],
                    definitions: Definitions) -> dict[str, Any]:
    """Apply ``_elements=names`` to one resource.

    Keeps ``resourceType``, ``id``, ``meta``, mandatory top-level elements and the named
    top-level elements. A name may be a path (``name.family`` keeps all of ``name``), be
    prefixed by the type (``Patient.name``), name a choice element (``deceased`` or
    ``deceased[x]``) or one of its JSON forms (``deceasedBoolean``). Unknown names are
    ignored.
    """
    resource_type = str(resource.get("resourceType", ""))
    children = definitions.children(resource_type)
    props = definitions.properties(resource_type)
    wanted: list[str] = []
    for raw in names:
        name = raw.strip().removeprefix(resource_type + ".").split(".", 1)[0]
        if name in children:
            wanted.append(name)
        elif name + "[x]" in children:
            wanted.append(name + "[x]")
        elif name in props:
            wanted.append(props[name].name)
    keep = {*_BASE,
            *_json_names(definitions, resource_type, definitions.mandatory_elements(resource_type)),
            *_json_names(definitions, resource_type, wanted)}
    return _keep_top(resource, keep)
