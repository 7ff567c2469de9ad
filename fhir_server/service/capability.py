"""The CapabilityStatement: the shipped base in ``capability/`` plus what really works."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fhir_server import __version__

#: Instance and type interactions every resource type supports.
TYPE_INTERACTIONS = ("read", "vread", "update", "delete", "history-instance",
                     "history-type", "create")


def build_capability(capability_dir: Path, resource_types: Iterable[str],
                     base_url: str | None) -> dict[str, Any]:
    """The server's CapabilityStatement, from ``CapabilityStatement-server.json``."""
    statement: dict[str, Any] = orjson.loads(
        (capability_dir / "CapabilityStatement-server.json").read_bytes())
    statement["date"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    statement["software"]["version"] = __version__
    if base_url:
        statement["implementation"]["url"] = base_url
    rest = statement["rest"][0]
    rest["resource"] = [
        {
            "type": name,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{name}",
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": False,
            "conditionalRead": "full-support",
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
        }
        for name in sorted(resource_types)
    ]
    return statement
