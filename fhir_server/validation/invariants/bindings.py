"""Extensible and preferred bindings of the base definitions: a miss is a warning.

A required binding is the structure stage's (an error). An extensible or preferred
one is checked wherever its value set can be expanded from the shipped code systems
(terminologies.html#strength): a code, Coding or CodeableConcept with no member of the
value set gets a ``warning`` issue, which never refuses a write and which ``$validate``
reports. A CodeableConcept holding text alone meets an extensible binding (the text
stands for a concept the value set lacks) and is not warned about.
"""

from __future__ import annotations

from typing import Any

from fhir_server.errors import Issue
from fhir_server.validation.invariants.plans import Binding

CODE_INVALID = "code-invalid"


def binding_issue(binding: Binding, value: Any, where: str) -> Issue | None:
    """The warning for ``value`` at ``where`` when it has no member of the value set."""
    if isinstance(value, str):
        if value in binding.codes:
            return None
    elif isinstance(value, dict):
        codings = value.get("coding") if "coding" in value or "text" in value else [value]
        if not isinstance(codings, list) or not codings:
            return None  # text alone (or nothing coded): the structure stage's concern
        if any(isinstance(c, dict) and (c.get("system"), c.get("code")) in binding.members
               for c in codings):
            return None
    else:
        return None
    return Issue(CODE_INVALID, f"{where}: no code from the {binding.strength} value set "
                 f"{binding.url} (a {binding.strength} binding: a warning, not a refusal)",
                 severity="warning", expression=(where,))
