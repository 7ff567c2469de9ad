"""Where the shipped data folders (profiles, search, capability, migrations) live.

In a source checkout they are the top-level folders; in an installed wheel they are
copied into ``fhir_server/_data`` (see ``pyproject.toml``). ``FHIR_DATA_DIR`` overrides
both so that operators can point the server at an extended copy.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder ``name`` (``profiles``, ``search``, ``capability``, ``migrations``)."""
    override = os.environ.get("FHIR_DATA_DIR")
    candidates = [Path(override) / name] if override else []
    candidates += [_PACKAGE / "_data" / name, _PACKAGE.parent / name]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"data folder {name!r} not found in {[str(c) for c in candidates]}")
