"""bench/population.py: deterministic, Synthea-shaped, written as NDJSON per type."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from bench import population
from bench.million_queries import mix


def test_a_patient_is_the_same_for_a_seed_and_index_only() -> None:
    shared = population.world(7)
    first = population.patient(7, 3, shared)
    assert population.patient(7, 3, population.world(7)) == first
    assert population.patient(7, 4, shared) != first
    assert population.patient(8, 3, population.world(8)) != first


def test_the_shape_of_a_population() -> None:
    shared = population.world(1)
    ids = {r["id"] for rs in shared.values() for r in rs}
    counts: Counter[str] = Counter()
    for index in range(60):
        record = population.patient(1, index, shared)
        assert record[0]["resourceType"] == "Patient"
        subject = f"Patient/{record[0]['id']}"
        for resource in record[1:]:
            ref = (resource.get("subject") or resource.get("patient")
                   or resource.get("beneficiary"))
            assert ref == {"reference": subject}
        assert len({r["id"] for r in record}) == len(record)
        assert not ids & {r["id"] for r in record}
        counts.update(r["resourceType"] for r in record)
    total = sum(counts.values())
    assert 35 * 60 < total < 75 * 60
    assert 0.4 < counts["Observation"] / total < 0.65
    assert counts["Patient"] == 60
    assert counts["Claim"] == counts["ExplanationOfBenefit"] == counts["Encounter"]
    for rtype in ("Condition", "Procedure", "MedicationRequest", "Immunization",
                  "DiagnosticReport", "Coverage"):
        assert counts[rtype] > 0, rtype


def test_shared_bundles_are_conditional_creates_the_patients_refer_to() -> None:
    bundles = population.shared_bundles(1)
    assert sorted(bundles) == ["hospitalInformation1.json", "practitionerInformation1.json"]
    entries = [e for b in bundles.values() for e in b["entry"]]
    assert {e["resource"]["resourceType"] for e in entries} == {
        "Organization", "Location", "Practitioner"}
    assert all(e["request"]["ifNoneExist"].startswith("identifier=") for e in entries)
    full_urls = {e["fullUrl"] for e in entries}
    record = population.patient(1, 0, population.world(1))
    org = record[0]["managingOrganization"]["reference"].split("/")[1]
    assert f"urn:uuid:{org}" in full_urls


def test_a_block_is_written_as_ndjson_per_type(tmp_path: Path) -> None:
    counts, size = population._block((1, 0, 3, str(tmp_path)))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "Patient.0000.ndjson" in files and "Observation.0000.ndjson" in files
    lines = (tmp_path / "Patient.0000.ndjson").read_text().splitlines()
    assert len(lines) == counts["Patient"] == 3
    assert json.loads(lines[0]) == population.patient(1, 0, population.world(1))[0]
    assert size == sum(p.stat().st_size for p in tmp_path.iterdir())
    assert ", " not in lines[0]  # compact JSON


def test_the_query_patient_fits_the_mix() -> None:
    shared = population.world(1)
    index = next(i for i in range(population.PICK_FROM, population.PICK_FROM + 300)
                 if population.suitable(population.patient(1, i, shared)))
    pick = population.describe(population.patient(1, index, shared), index)
    paths = [q.path for q in mix(pick)]
    assert f"/fhir/Patient/{pick['id']}/$everything" in paths
    assert all(p.startswith("/fhir/") for p in paths)
