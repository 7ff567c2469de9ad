"""The validation corpus: one JSON case a file (see README.md beside this file).

``load_cases()`` reads them; ``unmet(case, issues)`` says which of a case's expected
rules an OperationOutcome's issues do not show, so the conformance test, the
in-process check and ``compare_validators.py`` judge a case the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent
#: Issue severities that make a resource invalid.
BLOCKING = frozenset({"error", "fatal"})
#: A constraint key of the specification or a profile (``pat-1``, ``hosp-appt-1``).
INVARIANT = re.compile(r"^[a-z][a-zA-Z]*(-[a-zA-Z]+)*-\d+$")
_ANY = frozenset({"structure", "required", "value", "invalid", "code-invalid", "invariant",
                  "business-rule", "processing", "not-supported"})
#: Rules that are not invariants: the issue codes that may report each. The issue must
#: also be located at the case's ``expression`` (or below it).
STRUCTURAL: dict[str, frozenset[str]] = {
    "cardinality-min": frozenset({"required"}),
    "cardinality-max": frozenset({"structure"}),
    "type": frozenset({"structure", "value"}),
    "format": frozenset({"value"}),
    "string-characters": frozenset({"value"}),
    "unknown-element": frozenset({"structure"}),
    "unknown-type": frozenset({"structure"}),
    "choice-one": frozenset({"structure"}),
    "empty-value": frozenset({"structure", "value"}),
    "binding-required": frozenset({"code-invalid"}),
    "mime-type": frozenset({"code-invalid", "value"}),
    "profile-cardinality": frozenset({"required", "structure"}),
    "profile-pattern": frozenset({"required", "value", "structure"}),
    "profile-target": frozenset({"structure", "invalid"}),
    # What the issue code will be is the implementer's choice: any code, located.
    "reference-target": _ANY,
    "primitive-alignment": _ANY,
    "xhtml-namespace": _ANY,
    "xhtml-root": _ANY,
    "xhtml-wellformed": _ANY,
    # Warnings of a valid case.
    "binding-extensible": _ANY,
    "binding-preferred": _ANY,
    "profile-unknown": _ANY,
}
#: Rules a valid case exercises positively: nothing to find in an outcome.
POSITIVE_ONLY = frozenset({"binding-example", "official-example"})


@dataclass(frozen=True)
class Case:
    """One corpus case: a resource, the verdict it must get and why."""

    name: str
    expect: str  # "valid" | "invalid"
    rules: tuple[str, ...]
    why: str
    resource: dict[str, Any]
    expression: str | None = None
    warnings: tuple[str, ...] = ()
    spec: str | None = None

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])


def load_cases(folder: Path = CORPUS) -> list[Case]:
    """Every case of the corpus, sorted by name; a malformed case raises ValueError."""
    cases = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("name") != path.stem or data.get("expect") not in ("valid", "invalid"):
            raise ValueError(f"{path.name}: 'name' must be the file's stem and 'expect' "
                             "valid or invalid")
        for rule in [*data["rules"], *data.get("warnings", ())]:
            if not (INVARIANT.match(rule) or rule in STRUCTURAL or rule in POSITIVE_ONLY):
                raise ValueError(f"{path.name}: unknown rule {rule!r} (README.md lists them)")
        cases.append(Case(name=data["name"], expect=data["expect"], rules=tuple(data["rules"]),
                          why=data["why"], resource=data["resource"],
                          expression=data.get("expression"),
                          warnings=tuple(data.get("warnings", ())), spec=data.get("spec")))
    if not cases:
        raise FileNotFoundError(f"no corpus cases in {folder}")
    return cases


def verdict(issues: Iterable[Mapping[str, Any]]) -> str:
    """``invalid`` when an issue is an error (or fatal), else ``valid``."""
    return "invalid" if any(i.get("severity") in BLOCKING for i in issues) else "valid"


def _text(issue: Mapping[str, Any]) -> str:
    details = issue.get("details")
    extra = details.get("text", "") if isinstance(details, Mapping) else ""
    return f"{issue.get('diagnostics', '')} {extra}"


def _located(issue: Mapping[str, Any], where: str | None) -> bool:
    if where is None:
        return True
    places = [*issue.get("expression", ()), *issue.get("location", ())]
    return any(p == where or p.startswith((where + ".", where + "[")) for p in places)


def shows(rule: str, issue: Mapping[str, Any], where: str | None) -> bool:
    """Whether ``issue`` reports ``rule``: an invariant's key is named in its
    diagnostics or details.text; any other rule is an issue of one of the rule's codes
    located at ``where`` (the case's expression) or below."""
    if INVARIANT.match(rule):
        return re.search(rf"(?<![\w-]){re.escape(rule)}(?![\w-])", _text(issue)) is not None
    return issue.get("code") in STRUCTURAL.get(rule, frozenset()) and _located(issue, where)


def unmet(case: Case, issues: Sequence[Mapping[str, Any]], *,
          warnings: bool = True) -> list[str]:
    """The case's expectations that ``issues`` (OperationOutcome issues) do not meet:
    the verdict, each rule of an invalid case (among the errors) and, with
    ``warnings``, each warning the case expects (a write's answer carries none)."""
    problems = []
    found = verdict(issues)
    if found != case.expect:
        problems.append(f"verdict {found}, expected {case.expect}")
    if case.expect == "invalid":
        errors = [i for i in issues if i.get("severity") in BLOCKING]
        problems += [f"no error shows {r}" for r in case.rules
                     if not any(shows(r, i, case.expression) for i in errors)]
    warned = [i for i in issues if i.get("severity") == "warning"]
    problems += [f"no warning shows {r}" for r in (case.warnings if warnings else ())
                 if not any(shows(r, i, case.expression) for i in warned)]
    return problems
