"""Value set membership for profile bindings: every call into terminology is here.

Expansions come from the one expander (:mod:`fhir_server.terminology`) over the
specification's value sets plus the ValueSets and CodeSystems found beside the profiles
(a national package's). A value set that cannot be expanded (SNOMED CT, LOINC, filters
the expander does not know) gives no answer, and its binding is not checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fhir_server.terminology import Catalog, Expander, Terminology, load_catalog


def load_terminology(profiles_dir: Path, extra: Iterable[dict[str, Any]],
                     urls: Iterable[str]) -> tuple[Terminology, Catalog]:
    """Expansions of ``urls`` from ``valuesets.json`` and ``extra`` resources, and the
    catalog they came from (which the terminology operations serve too)."""
    extra = [r for r in extra if "url" in r]
    catalog = load_catalog(profiles_dir)
    if extra:
        catalog = catalog.with_resources(extra)
    return Terminology.of(Expander(catalog), urls), catalog


class Bindings:
    """Answers whether a coded value is in a value set (None: cannot tell)."""

    def __init__(self, terminology: Terminology) -> None:
        self._terminology = terminology

    def member(self, url: str, value: Any) -> bool | None:
        """``value``: a code (string), Coding, Quantity or CodeableConcept."""
        expansion = self._terminology.expansion(url)
        if expansion is None:
            return None
        if isinstance(value, str):
            codes = self._terminology.codes(url)
            return codes is not None and value in codes
        if not isinstance(value, dict):
            return None
        codings = value.get("coding") if "coding" in value else [value]
        if not isinstance(codings, list):
            return False
        return any(isinstance(c, dict) and (c.get("system"), c.get("code")) in expansion
                   for c in codings)
