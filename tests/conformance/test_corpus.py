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

#: Rule -> why it is not checked yet. Remove a rule once the server checks it.
PENDING_RULES: dict[str, str] = {
    "dom-6": "skipped on purpose (a best-practice note; README: Validation, the "
             "invariants handled deliberately)",
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
