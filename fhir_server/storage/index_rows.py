"""A resource's search index rows as the JSON ``fhir_write`` and ``fhir_write_index``
read: one shape for the API's writes, the audit mover and ``$reindex``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dump_index(index: dict[str, list[dict[str, Any]]] | None) -> str | None:
    """Index rows as the JSON ``fhir_write_index`` reads (numerics kept exact)."""
    if not index:
        return None
    return orjson.dumps(index, default=_json_default).decode()
