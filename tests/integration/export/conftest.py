"""Helpers of the export tests: a population loaded through transactions, an export run
to its manifest."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def load(base: str, patients: int, observations: int = 0, per_bundle: int = 500) -> int:
    """Patients (each with ``observations`` Observations) PUT through transactions; the
    number of resources stored."""
    entries: list[dict[str, Any]] = []
    for p in range(patients):
        entries.append({"resourceType": "Patient", "id": f"p{p}", "gender": "female",
                        "name": [{"family": f"Family{p}", "given": ["Ann"]}],
                        "birthDate": "1970-01-01"})
        entries += [{"resourceType": "Observation", "id": f"p{p}-o{o}", "status": "final",
                     "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                     "subject": {"reference": f"Patient/p{p}"},
                     "valueQuantity": {"value": 60 + o, "unit": "kg"}}
                    for o in range(observations)]
    with httpx.Client(base_url=f"{base}/fhir", timeout=120) as client:
        for start in range(0, len(entries), per_bundle):
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": r, "request": {"method": "PUT",
                                            "url": f"{r['resourceType']}/{r['id']}"}}
                for r in entries[start:start + per_bundle]]}
            answer = client.post("", content=orjson.dumps(bundle),
                                 headers={"Content-Type": "application/fhir+json"})
            assert answer.status_code == 200, answer.text[:500]
    return len(entries)


def kick_off(base: str, params: Any = None) -> str:
    """Start a system export; its status URL."""
    answer = httpx.get(f"{base}/fhir/$export", params=params, headers=ASYNC, timeout=30)
    assert answer.status_code == 202, answer.text
    return str(answer.headers["content-location"])


def finish(status_url: str, seconds: float = 120) -> dict[str, Any]:
    """Poll until the manifest is there."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = httpx.get(status_url, timeout=30)
        if answer.status_code == 200:
            return dict(answer.json())
        assert answer.status_code == 202, answer.text
        time.sleep(0.1)
    raise AssertionError("the export did not finish in time")
