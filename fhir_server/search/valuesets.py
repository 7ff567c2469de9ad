"""Value set expansions for ``:in`` / ``:not-in``, loaded on first use.

Expanding every value set of the specification takes a moment and memory that most
deployments never need, so it happens the first time a search uses ``:in``.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from fhir_server.validation.terminology import VALUESETS_FILE, Code, Terminology, expand_packed


class ValueSets:
    """Expansions of the shipped ValueSets, by canonical URL (``|version`` ignored)."""

    def __init__(self, profiles_dir: Path) -> None:
        self._dir = profiles_dir
        self._terminology: Terminology | None = None

    def _load(self) -> Terminology:
        if self._terminology is None:
            bundle = orjson.loads((self._dir / VALUESETS_FILE).read_bytes())
            urls = [e["resource"]["url"] for e in bundle.get("entry", ())
                    if e.get("resource", {}).get("resourceType") == "ValueSet"]
            del bundle
            self._terminology = Terminology.unpack(expand_packed(self._dir, urls))
        return self._terminology

    def __call__(self, url: str) -> frozenset[Code] | None:
        """The (system, code) pairs of a value set, or None when unknown/unexpandable."""
        return self._load().expansion(url.split("|", 1)[0])
