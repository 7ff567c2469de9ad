"""Value set membership for profile bindings: every call into terminology is here.

Expansions come from :mod:`fhir_server.validation.terminology` over the specification's
value sets plus the ValueSets and CodeSystems found beside the profiles (a national
package's). A value set that cannot be expanded (SNOMED CT, LOINC, filters the
expander does not know) gives no answer, and its binding is not checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from fhir_server.validation.terminology import VALUESETS_FILE, Terminology, _Expander


def load_terminology(profiles_dir: Path, extra: Iterable[dict[str, Any]],
                     urls: Iterable[str]) -> Terminology:
    """Expansions of ``urls`` from ``valuesets.json`` and ``extra`` resources.

    The expander is the terminology module's own: a package's value sets are expanded
    by the same rules as the specification's.
    """
    bundle = orjson.loads((profiles_dir / VALUESETS_FILE).read_bytes())
    bundle.setdefault("entry", []).extend({"resource": r} for r in extra if "url" in r)
    expander = _Expander(bundle)
    expansions = {}
    for url in urls:
        codes = expander.expand(url)
        if codes is not None:
            expansions[url] = codes
    return Terminology(expansions)


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
