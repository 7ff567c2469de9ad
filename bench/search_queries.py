"""The fixed query mix of the search benchmark, with values picked from the loaded data.

Every value comes from resources of the first (10k) stage, so the same URLs run at both
scales: a selective query returns the same matches at 10k and at 100k (date ranges and
broad queries find more at 100k, as they would in a growing database).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from bench import data

LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
#: Hemoglobin A1c: one lab Observation per carebundle patient.
HBA1C = "4548-4"


@dataclass(frozen=True)
class Query:
    """One query of the mix."""

    name: str
    #: the feature it exercises (token, string, date, chain, _has, ...)
    feature: str
    #: path and query string under the server root, e.g. ``/fhir/Patient?name=x``
    path: str
    #: selective: few matches that do not grow with the database (the growth target)
    selective: bool
    #: what the query means, for the report
    note: str = ""


@dataclass(frozen=True)
class Picks:
    """Values chosen from the data for the query mix."""

    patient_id: str
    identifier_system: str
    identifier_value: str
    encounter_id: str
    visit: date
    profile: str
    #: the patient's carebundle index (for the report)
    index: int
    us_core_family_prefix: str = "ritch"


def pick(manifest: data.Manifest, stage_stop: int, seed: int, target: int) -> Picks:
    """A type 2 diabetes carebundle patient from the middle of the first stage.

    Diabetic patients have Conditions, MedicationRequests and every lab panel, so every
    query about them has matches.
    """
    us_core_units = len(manifest.boundaries) - manifest.patients
    stage_patients = [i for i in range(manifest.patients)
                      if manifest.boundaries[us_core_units + i] <= stage_stop]
    if not stage_patients:
        raise ValueError("the first stage holds no carebundle patient")
    middle = len(stage_patients) // 2
    order = stage_patients[middle:] + stage_patients[:middle]
    for index in order:
        profile, visit = manifest.patient_profiles[index]
        if profile != "type2_diabetes":
            continue
        start = manifest.boundaries[us_core_units + index - 1]
        stop = manifest.boundaries[us_core_units + index]
        resources = [json.loads(line) for line in data.read(seed, target, start, stop)]
        by_type: dict[str, list[dict[str, Any]]] = {}
        for resource in resources:
            by_type.setdefault(resource["resourceType"], []).append(resource)
        if not by_type.get("MedicationRequest") or not by_type.get("Condition"):
            continue
        patient = by_type["Patient"][0]
        identifier = patient["identifier"][0]
        return Picks(patient_id=patient["id"], identifier_system=identifier["system"],
                     identifier_value=identifier["value"],
                     encounter_id=by_type["Encounter"][0]["id"],
                     visit=date.fromisoformat(visit), profile=profile, index=index)
    raise ValueError("no type 2 diabetes patient with medications in the first stage")


@dataclass(frozen=True)
class MixValues:
    """What the shared queries need from the data (raw, URL-quoted here)."""

    #: ``system|value`` of the query patient's identifier
    identifier: str
    patient_id: str
    #: a day with an Encounter of the query patient
    visit: date
    #: ``system|code`` of a lab code most patients have (HbA1c)
    lab_code: str
    #: ``system|code`` of type 2 diabetes and of hypertension (Conditions)
    diabetes: str
    hypertension: str


def shared_mix(v: MixValues, strings: Sequence[Query], week_selective: bool) -> list[Query]:
    """The queries both benchmarks run (``bench.search`` and ``bench.million``), with
    each one's string queries after the token ones; ``week_selective``: whether the
    Encounters-in-a-week query counts as selective (its matches grow with the data)."""
    ident = quote(v.identifier, safe="")
    pid = f"Patient/{v.patient_id}"
    code = quote(v.lab_code, safe="")
    week_from = (v.visit - timedelta(days=3)).isoformat()
    week_to = (v.visit + timedelta(days=4)).isoformat()
    return [
        Query("token-identifier", "token", f"/fhir/Patient?identifier={ident}", True,
              "one Patient by system|value"),
        Query("token-code", "token", f"/fhir/Observation?code={code}", False,
              "first page of one lab code (HbA1c)"),
        Query("token-patient-code", "token+reference",
              f"/fhir/Observation?patient={pid}&code={code}", True,
              "one patient's HbA1c"),
        *strings,
        Query("date-range", "date", f"/fhir/Encounter?date=ge{week_from}&date=lt{week_to}",
              week_selective, "Encounters in one week (grows with the data)"),
        Query("date-range-patient", "date+reference",
              f"/fhir/Observation?patient={pid}&date=ge{week_from}&date=lt{week_to}", True,
              "one patient's Observations in one week"),
        Query("chain-1", "chain", f"/fhir/Observation?subject:Patient.identifier={ident}",
              True, "Observations of the patient with this identifier"),
        Query("chain-2", "chain (2 levels)",
              f"/fhir/Condition?encounter.subject:Patient.identifier={ident}", True,
              "Conditions whose encounter's patient has this identifier"),
        Query("has", "_has", f"/fhir/Patient?_has:Encounter:subject:date={v.visit}", True,
              "Patients with an Encounter on one day"),
        Query("has-broad", "_has",
              f"/fhir/Patient?_has:Condition:subject:code={quote(v.diabetes, safe='')}",
              False, "Patients with type 2 diabetes (~12%)"),
        Query("include", "_include",
              f"/fhir/MedicationRequest?subject={pid}&_include=MedicationRequest:subject"
              "&_include=MedicationRequest:requester", True,
              "one patient's MedicationRequests with patient and prescriber"),
        Query("revinclude", "_revinclude",
              f"/fhir/Patient?identifier={ident}&_revinclude=Observation:subject"
              "&_revinclude=Condition:subject", True,
              "one Patient with their Observations and Conditions"),
        Query("filter-unsorted", "filter", f"/fhir/Observation?patient={pid}", True,
              "one patient's Observations, insertion order"),
        Query("sort-lastUpdated", "_sort+filter",
              f"/fhir/Observation?patient={pid}&_sort=-_lastUpdated", True,
              "the same, newest first"),
        Query("sort-date", "_sort+filter", f"/fhir/Observation?patient={pid}&_sort=-date",
              True, "the same, by effective date"),
        Query("sort-broad", "_sort+filter", f"/fhir/Observation?code={code}&_sort=-date",
              False, "one lab code, latest first"),
        Query("summary-count", "_summary=count",
              f"/fhir/Observation?code={code}&_summary=count", False,
              "count of one lab code"),
        Query("total-accurate", "_total=accurate",
              f"/fhir/Condition?code={quote(v.hypertension, safe='')}&_total=accurate",
              False, "first page of hypertension Conditions with the exact total"),
        Query("page-first", "paging", "/fhir/Observation?category=laboratory&_count=100",
              False, "first page of all lab Observations (100 a page)"),
    ]


def floor(patient_id: str) -> Query:
    """A plain read, the floor of what any request costs (not part of the targets)."""
    return Query("read (floor)", "read", f"/fhir/Patient/{patient_id}", True,
                 "GET of one Patient: HTTP + framework cost without search")


def mix(p: Picks) -> list[Query]:
    """The query mix (paging's last page is added once its cursor is known)."""
    values = MixValues(f"{p.identifier_system}|{p.identifier_value}", p.patient_id, p.visit,
                       f"{LOINC}|{HBA1C}", f"{ICD10}|E11.9", f"{ICD10}|I10")
    strings = [
        Query("string-prefix", "string", f"/fhir/Patient?family={p.us_core_family_prefix}",
              True, "family-name prefix of one US Core patient"),
        Query("string-prefix-broad", "string", "/fhir/Patient?name=fakew", False,
              "name prefix shared by ~10% of patients"),
    ]
    return shared_mix(values, strings, week_selective=True)


def floor_query(p: Picks) -> Query:
    """A plain read, the floor of what any request costs (not part of the targets)."""
    return floor(p.patient_id)
