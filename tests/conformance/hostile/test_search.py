"""Hostile searches, each asked as GET, as POST ``_search`` and as a batch entry: more
parameters, values or chain links than the limits allow, NUL characters, bad UTF-8,
forged cursors, bad modifiers, ``_sort``, ``_include``, dates and numbers no column
holds. A refusal is a 400 OperationOutcome before any statement runs."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import orjson
import pytest

from tests.conformance.hostile.conftest import Case, bundle, check, outcome_code, params


def _cursor(value: object) -> str:
    """A forged paging token (``value`` as JSON, or JSON text as it is)."""
    raw = value.encode() if isinstance(value, str) else orjson.dumps(value)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_MANY = "&".join(f"name=n{i}" for i in range(1000))
_PARTOF = "organization" + ".partof" * 1000 + ".name=x"

#: (name, resource type, query, status, issue code)
VECTORS: list[tuple[str, str, str, int, str]] = [
    ("parameters-1000", "Patient", _MANY, 400, "too-costly"),
    ("parameters-41", "Patient", "&".join(["family=x"] * 41), 400, "too-costly"),
    ("values-1001", "Patient", "name=" + ",".join(f"n{i}" for i in range(1001)), 400,
     "too-costly"),
    ("values-1001-over-two", "Patient", "name=" + ",".join(f"n{i}" for i in range(500))
     + "&family=" + ",".join(f"f{i}" for i in range(501)), 400, "too-costly"),
    ("chain-4-links", "Patient", "organization.partof.partof.partof.name=x", 400,
     "too-costly"),
    ("chain-1000-links", "Patient", _PARTOF, 400, "too-costly"),
    ("chain-4-typed", "Observation",
     "subject:Patient.organization.partof.partof.name=x", 400, "too-costly"),
    ("nul-value", "Patient", "name=a%00b", 400, "invalid"),
    ("nul-name", "Patient", "na%00me=x", 400, "invalid"),
    ("nul-token", "Patient", "identifier=urn:x%7Ca%00", 400, "invalid"),
    ("nul-date", "Patient", "birthdate=2020%00", 400, "invalid"),
    ("surrogate-value", "Patient", "name=%ED%A0%80", 400, "invalid"),
    ("invalid-utf8-value", "Patient", "name=%FF%FE", 400, "invalid"),
    ("bad-modifier", "Patient", "name:banana=x", 400, "invalid"),
    ("modifier-on-token", "Patient", "gender:contains=x", 400, "invalid"),
    ("unknown-type-modifier", "Patient", "general-practitioner:Banana=x", 400, "invalid"),
    ("unknown-parameter-strict", "Patient", "banana=x", 400, "invalid"),
    ("sort-unknown", "Patient", "_sort=banana", 400, "invalid"),
    ("sort-dash", "Patient", "_sort=-", 400, "invalid"),
    ("sort-nul", "Patient", "_sort=name%00", 400, "invalid"),
    ("include-unknown", "Patient", "_include=Patient:banana", 400, "invalid"),
    ("include-garbage", "Patient", "_include=%3A%3A%3A", 400, "invalid"),
    ("include-unknown-type", "Patient", "_include=Banana:subject", 400, "invalid"),
    ("revinclude-unknown", "Patient", "_revinclude=Observation:banana", 400, "invalid"),
    ("cursor-not-base64", "Patient", "_cursor=%21%21%21", 400, "invalid"),
    ("cursor-forged-sorted", "Patient",
     "_sort=name&_cursor=" + _cursor({"k": [1, 2], "b": False}), 400, "invalid"),
    ("cursor-nul", "Patient", "_sort=name&_cursor=" + _cursor({"k": ["a\x00", 1],
                                                               "b": False}), 400, "invalid"),
    ("cursor-row-id-65-bits", "Patient",
     "_cursor=" + _cursor('{"k":[18446744073709551616],"b":false}'), 400, "invalid"),
    ("cursor-direction-string", "Patient", "_cursor=" + _cursor({"k": [1], "b": "x"}), 400,
     "invalid"),
    ("cursor-array", "Patient", "_cursor=" + _cursor([1, 2]), 400, "invalid"),
    ("date-month-13", "Patient", "birthdate=2020-13-99", 400, "invalid"),
    ("date-prefix-only", "Patient", "birthdate=ge", 400, "invalid"),
    ("date-year-5-digits", "Patient", "birthdate=99999-01-01", 400, "invalid"),
    ("date-hour-25", "Patient", "_lastUpdated=gt2020-01-01T25:00:00Z", 400, "invalid"),
    ("date-text", "Patient", "birthdate=yesterday", 400, "invalid"),
    ("count-negative", "Patient", "_count=-1", 400, "invalid"),
    ("count-text", "Patient", "_count=many", 400, "invalid"),
    ("count-huge", "Patient", "_count=99999999999999999999", 400, "invalid"),
    ("count-exponent", "Patient", "_count=1e999", 400, "invalid"),
    ("summary-unknown", "Patient", "_summary=banana", 400, "invalid"),
    ("total-unknown", "Patient", "_total=banana", 400, "invalid"),
    ("contained-unknown", "Patient", "_contained=banana", 400, "invalid"),
    ("has-unknown-type", "Patient", "_has:Banana:patient:code=x", 400, "invalid"),
    ("has-unknown-parameter", "Patient", "_has:Observation:patient:banana=x", 400,
     "invalid"),
    ("quantity-overflow", "Observation", "value-quantity=1e999999", 400, "invalid"),
    ("quantity-underflow", "Observation", "value-quantity=1e-999999", 400, "invalid"),
    ("quantity-nan", "Observation", "value-quantity=NaN", 400, "invalid"),
    ("quantity-prefix-only", "Observation", "value-quantity=gt", 400, "invalid"),
    ("number-overflow", "RiskAssessment", "probability=1e999999", 400, "invalid"),
    ("number-infinity", "RiskAssessment", "probability=Infinity", 400, "invalid"),
    ("reference-nul", "Observation", "subject=Patient/a%00", 400, "invalid"),
    ("composite-nul", "Observation", "code-value-quantity=x%24%00", 400, "invalid"),
]


def _cases() -> list[Case]:
    cases: list[Case] = []
    for name, kind, query, status, code in VECTORS:
        strict = {"Prefer": "handling=strict"}
        cases += [
            Case(f"get-{name}", "GET", f"/{kind}?{query}", status, code, headers=strict),
            Case(f"post-{name}", "POST", f"/{kind}/_search", status, code,
                 query.encode(), {"Content-Type": "application/x-www-form-urlencoded",
                                  **strict}),
        ]
    return cases


@pytest.mark.parametrize("case", params(_cases()))
def test_hostile_search_is_refused(case: Case, fhir: httpx.Client,
                                   stored: Callable[[], int]) -> None:
    check(case, fhir, stored)


@pytest.mark.parametrize(("name", "kind", "query", "status", "code"),
                         [pytest.param(*v, id=v[0]) for v in VECTORS])
def test_hostile_search_in_a_batch_is_refused(fhir: httpx.Client, name: str, kind: str,
                                              query: str, status: int, code: str) -> None:
    """The entry answers as the search would over HTTP; the batch itself is a 200."""
    body = bundle("batch", [{"request": {"method": "GET", "url": f"{kind}?{query}"}}])
    response = fhir.post("", content=body, headers={"Content-Type": "application/fhir+json",
                                                     "Prefer": "handling=strict"})
    assert response.status_code == 200, response.text[:300]
    entry = response.json()["entry"][0]["response"]
    assert entry["status"].split()[0] == str(status), entry
    assert outcome_code(orjson.dumps(entry["outcome"])) == code


#: system, compartment and history searches: (name, path and query, status, code)
OTHER: list[tuple[str, str, int, str]] = [
    ("system-parameters-1000", "?_type=Patient&" + _MANY, 400, "too-costly"),
    ("system-unknown-type", "?_type=Banana", 404, "not-found"),
    ("system-nul-type", "?_type=Pat%00ient", 400, "invalid"),
    ("system-sort-unknown", "?_sort=banana", 400, "invalid"),
    ("system-cursor-forged", "?_cursor=" + _cursor({"k": "x", "b": False}), 400, "invalid"),
    ("system-lastupdated-bad", "?_lastUpdated=2020-02-30", 400, "invalid"),
    ("compartment-parameters-1000", "/Patient/hostile-c/Observation?" +
     "&".join(f"code=c{i}" for i in range(1000)), 400, "too-costly"),
    ("compartment-values-1001", "/Patient/hostile-c/Observation?code=" +
     ",".join(f"c{i}" for i in range(1001)), 400, "too-costly"),
    ("compartment-nul", "/Patient/hostile-c/Observation?code=a%00", 400, "invalid"),
    ("compartment-chain-deep", "/Patient/hostile-c/Observation?"
     "subject:Patient.organization.partof.partof.name=x", 400, "too-costly"),
    ("compartment-all-bad-sort", "/Patient/hostile-c/*?_sort=banana", 400, "invalid"),
    ("compartment-unknown", "/Banana/hostile-c/Observation", 404, "not-found"),
    ("history-system-since-bad", "/_history?_since=banana", 400, "invalid"),
    ("history-system-count-negative", "/_history?_count=-5", 400, "invalid"),
    ("history-system-cursor-forged", "/_history?_cursor=" + _cursor({"k": [], "b": 1}),
     400, "invalid"),
    ("history-system-at-bad", "/_history?_at=2020-13", 400, "invalid"),
    ("history-type-since-bad", "/Patient/_history?_since=2020-13-01", 400, "invalid"),
    ("history-type-since-nul", "/Patient/_history?_since=2020%00", 400, "invalid"),
    ("history-type-count-huge", "/Patient/_history?_count=99999999999999999999", 400,
     "invalid"),
    ("history-type-cursor-garbage", "/Patient/_history?_cursor=%FF", 400, "invalid"),
    ("history-instance-since-bad", "/Patient/hostile-h/_history?_since=x", 400, "invalid"),
    ("history-instance-cursor", "/Patient/hostile-h/_history?_cursor=" +
     _cursor({"k": [-1], "b": False}), 400, "invalid"),
]


@pytest.mark.parametrize("case", params([
    Case(name, "GET", path, status, code, headers={"Prefer": "handling=strict"})
    for name, path, status, code in OTHER]))
def test_hostile_system_compartment_history_search_is_refused(
        case: Case, fhir: httpx.Client, stored: Callable[[], int]) -> None:
    check(case, fhir, stored)
