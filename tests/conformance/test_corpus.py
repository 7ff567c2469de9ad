"""The validation corpus (``tests/conformance/corpus/``, see its README.md) over the API.

Each case is created (``POST /{type}``): an invalid one must answer 422 with an
OperationOutcome whose errors show every rule the case names, and leave nothing stored
(a search by the unique tag the test adds finds nothing); a valid one must answer 201.
``POST /{type}/$validate`` must give the same verdict, the same rules, and the warnings
a valid case expects (extensible and preferred bindings, guideline invariants).

Rules the server does not check yet are in ``PENDING_RULES``: their cases are strict
xfails, so when a rule lands its cases XPASS and fail until it is removed from there.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conformance.corpus import Case, load_cases, unmet

HEADERS = {"Content-Type": "application/fhir+json"}
TAG_SYSTEM = "urn:fhir-server:test-corpus"
_REPO = Path(__file__).resolve().parents[2]
_MEDPLUM = _REPO / "tests" / "tools" / "medplum"

_INVARIANTS = "FHIRPath invariants are not evaluated on main"
_XHTML = "the narrative's XHTML is only checked against the schema's pattern on main"
#: Rule -> why it is not checked yet. Remove a rule once the server checks it.
PENDING_RULES: dict[str, str] = {
    **{rule: _INVARIANTS for rule in (
        "app-1", "app-2", "app-3", "app-4", "att-1", "bdl-1", "bdl-2", "bdl-3", "bdl-4",
        "bdl-5", "bdl-7", "bdl-8", "bdl-9", "bdl-10", "bdl-11", "bdl-12", "con-1", "con-2",
        "con-3", "con-4", "con-5", "cpt-2", "dom-3", "dom-4", "dom-5", "dom-6", "drt-1",
        "ext-1", "hosp-appt-1", "hosp-doc-1", "obs-3", "obs-6", "obs-7", "org-1", "org-2",
        "org-3", "pat-1", "per-1", "qty-3", "rat-1", "ref-1", "rng-2")},
    "ele-1": "refused by the JSON schema on main, but the issue does not name ele-1",
    "dom-2": "refused by the JSON schema on main, but the issue does not name dom-2",
    "txt-1": _XHTML, "txt-2": _XHTML, "xhtml-namespace": _XHTML, "xhtml-wellformed": _XHTML,
    "primitive-alignment": "x and _x arrays of different lengths are accepted on main",
    "reference-target": "the base definitions' reference targets are not checked on main "
                        "(only a profile's targetProfile is)",
    "binding-extensible": "extensible bindings of the base definitions give no warning",
    "binding-preferred": "preferred bindings of the base definitions give no warning",
}

CASES = load_cases()


def _pending(case: Case, *, warnings: bool) -> list[str]:
    rules = [*case.rules] if case.expect == "invalid" else []
    rules += [*case.warnings] if warnings else []
    return sorted({r for r in rules if r in PENDING_RULES})


def _params(*, warnings: bool) -> list[Any]:
    params = []
    for case in CASES:
        pending = _pending(case, warnings=warnings)
        marks = [pytest.mark.xfail(strict=True, reason="; ".join(
            f"{r}: {PENDING_RULES[r]}" for r in pending))] if pending else []
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


def _tagged(case: Case) -> tuple[dict[str, Any], str]:
    """The case's resource with a tag of its own (how the search finds it), and the tag."""
    code = f"{case.name}-{uuid.uuid4().hex[:12]}"
    resource = copy.deepcopy(case.resource)
    meta = resource.setdefault("meta", {})
    meta["tag"] = [*meta.get("tag", []), {"system": TAG_SYSTEM, "code": code}]
    return resource, code


def _stored(client: httpx.Client, case: Case, code: str) -> int:
    found = client.get(f"/{case.resource_type}", params={"_tag": f"{TAG_SYSTEM}|{code}"})
    assert found.status_code == 200, found.text
    return len(found.json().get("entry", []))


@pytest.mark.parametrize("case", _params(warnings=False))
def test_a_write_gets_the_cases_verdict(client: httpx.Client, case: Case) -> None:
    resource, code = _tagged(case)
    answer = client.post(f"/{case.resource_type}", json=resource, headers=HEADERS)
    if case.expect == "valid":
        assert answer.status_code == 201, f"{case.why}\n{answer.text}"
        assert _stored(client, case, code) == 1
        return
    assert answer.status_code == 422, f"{case.why}\n{answer.text}"
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert unmet(case, outcome.get("issue", []), warnings=False) == [], \
        f"{case.why}\n{answer.text}"
    assert _stored(client, case, code) == 0


@pytest.mark.requires(operation="validate")
@pytest.mark.parametrize("case", _params(warnings=True))
def test_validate_gets_the_cases_verdict(client: httpx.Client, case: Case) -> None:
    body = {"resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": case.resource}]}
    answer = client.post(f"/{case.resource_type}/$validate", json=body, headers=HEADERS)
    assert answer.status_code == 200, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert unmet(case, outcome.get("issue", [])) == [], f"{case.why}\n{answer.text}"


@pytest.mark.in_process
def test_the_recorded_disagreements_are_up_to_date() -> None:
    """DISAGREEMENTS.md lists what Medplum's validator and ours disagree on today."""
    if shutil.which("node") is None or not (_MEDPLUM / "node_modules").is_dir():
        pytest.skip("the independent validator is not installed: needs node and "
                    "`npm ci --prefix tests/tools/medplum`")
    done = subprocess.run(
        [sys.executable, "-m", "tests.conformance.compare_validators", "--check"],
        cwd=_REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
