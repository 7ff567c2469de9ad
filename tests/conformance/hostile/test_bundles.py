"""Hostile Bundles sent to the base: more searches than MAX_BUNDLE_SEARCHES, more
entries than MAX_BUNDLE_ENTRIES, integers beyond 64 bits, lone surrogates, entries that
are no request at all. A refused transaction stores none of its entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.conformance.hostile.conftest import Case, bundle, check, params

_SEARCH = {"request": {"method": "GET", "url": "Patient?name=hostile&_count=1000"}}
_READ = {"request": {"method": "GET", "url": "Patient/hostile-none"}}
_CREATE = {"request": {"method": "POST", "url": "Patient"},
           "resource": {"resourceType": "Patient", "name": [{"family": "Bundled"}]}}


def _entries(entry: dict[str, Any], n: int) -> list[dict[str, Any]]:
    return [entry] * n


def _raw(kind: str, entry: bytes) -> bytes:
    return (b'{"resourceType":"Bundle","type":"' + kind.encode() + b'","entry":[' + entry
            + b"]}")


_BIGINT = (b'{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient",'
           b'"multipleBirthInteger":99999999999999999999999}}')
_SURROGATE = (b'{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":'
              b'"Patient","name":[{"family":"\\udc80"}]}}')

CASES: list[Case] = []
for kind in ("batch", "transaction"):
    CASES += [
        Case(f"{kind}-101-searches", "POST", "", 413, "too-costly",
             bundle(kind, _entries(_SEARCH, 101))),
        Case(f"{kind}-101-type-histories", "POST", "", 413, "too-costly",
             bundle(kind, _entries({"request": {"method": "GET", "url": "Patient/_history"}},
                                   101))),
        Case(f"{kind}-101-searches-among-creates", "POST", "", 413, "too-costly",
             bundle(kind, _entries(_CREATE, 50) + _entries(_SEARCH, 101))),
        Case(f"{kind}-20001-entries", "POST", "", 413, "too-long",
             bundle(kind, _entries(_READ, 20_001))),
        Case(f"{kind}-lone-surrogate", "POST", "", 400, "invalid", _raw(kind, _SURROGATE)),
        Case(f"{kind}-lone-surrogate-in-url", "POST", "", 400, "invalid",
             _raw(kind, b'{"request":{"method":"GET","url":"Patient?name=\\ud800"}}')),
        Case(f"{kind}-entry-list-not-array", "POST", "", 400, "invalid",
             b'{"resourceType":"Bundle","type":"' + kind.encode() + b'","entry":{}}'),
        Case(f"{kind}-deep", "POST", "", 400, "structure",
             _raw(kind, b'{"request":{"method":"POST","url":"Patient"},"resource":'
                  b'{"resourceType":"Patient","extension":' + b"[" * 80 + b"]" * 80 + b"}}")),
        Case(f"{kind}-quantity-underflow", "POST", "", 400, "invalid",
             _raw(kind, b'{"request":{"method":"POST","url":"Observation"},"resource":'
                  b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
                  b'"valueQuantity":{"value":1e-999999}}}')),
        Case(f"{kind}-nan", "POST", "", 400, "invalid",
             _raw(kind, b'{"request":{"method":"POST","url":"Patient"},"resource":'
                  b'{"resourceType":"Patient","multipleBirthInteger":NaN}}')),
    ]
CASES += [
    # the vector; a batch's entry-level faults are answered in its entries
    Case("batch-10000-searches", "POST", "", 413, "too-costly",
         bundle("batch", _entries(_SEARCH, 10_000))),
    # the vector: an integer beyond 64 bits is no longer a 500; out of range for
    # integer (32 bits), as in a single body
    Case("transaction-integer-beyond-64-bits", "POST", "", 422, "value",
         _raw("transaction", _BIGINT)),
    Case("transaction-nul-in-url", "POST", "", 400, "invalid",
         _raw("transaction", b'{"request":{"method":"GET","url":"Patient?name=a\\u0000"}}')),
    Case("transaction-entry-not-object", "POST", "", 400, "invalid", _raw("transaction", b"5")),
    Case("bundle-type-searchset", "POST", "", 400, "invalid",
         bundle("searchset", [_CREATE])),
    Case("bundle-type-missing", "POST", "", 400, "invalid",
         b'{"resourceType":"Bundle","entry":[]}'),
    Case("bundle-not-a-bundle", "POST", "", 400, "invalid", b'{"resourceType":"Patient"}'),
    Case("transaction-entry-no-request", "POST", "", 400, "invalid",
         bundle("transaction", [{"resource": {"resourceType": "Patient"}}])),
    Case("transaction-entry-bad-method", "POST", "", 400, "invalid",
         bundle("transaction", [{"request": {"method": "BREW", "url": "Patient"}}])),
    Case("transaction-entry-absolute-foreign-url", "POST", "", 400, "invalid",
         bundle("transaction", [{"request": {"method": "POST",
                                             "url": "http://evil.example/fhir/Patient"},
                                 "resource": {"resourceType": "Patient"}}])),
    Case("transaction-one-bad-entry-of-two", "POST", "", 422, "structure",
         bundle("transaction", [_CREATE, {"request": {"method": "POST", "url": "Patient"},
                                          "resource": {"resourceType": "Patient",
                                                       "birthDate": 5}}])),
    Case("transaction-amplified-patch-size", "POST", "", 413, "too-long",
         bundle("transaction", [{"request": {"method": "POST", "url": "Patient"},
                                 "resource": {"resourceType": "Patient", "name": [
                                     {"text": "x" * (9 * 2 ** 20)}]}}])),
    Case("transaction-nested-bundle-searches", "POST", "", 413, "too-costly",
         bundle("transaction", _entries({"request": {"method": "GET",
                                                     "url": "Patient?_count=1000"}}, 150))),
]


@pytest.mark.parametrize("case", params(CASES))
def test_hostile_bundle_is_refused(case: Case, fhir: httpx.Client,
                                   stored: Callable[[], int]) -> None:
    check(case, fhir, stored)


def test_batch_of_100_searches_is_answered(fhir: httpx.Client) -> None:
    """MAX_BUNDLE_SEARCHES is a limit, not a ban: 100 searches are run."""
    response = fhir.post("", content=bundle("batch", _entries(_SEARCH, 100)),
                         headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 200
    statuses = {e["response"]["status"].split()[0] for e in response.json()["entry"]}
    assert statuses == {"200"}
    assert orjson.loads(response.content)["type"] == "batch-response"
