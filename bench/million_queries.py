"""The query mix of ``bench.million``: ``bench/search_queries.py``'s mix on the generated
population, plus the per-patient ``$everything`` and compartment search.

Every value comes from the population manifest's patient (``pick``), the same patient at
every population size (see ``bench/population.py``), so a selective query returns the
same matches at 100k and at 1M and only the database around it grows.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from bench import population_codes as c
from bench.search_queries import Query

DIABETES = "44054006"
HYPERTENSION = "38341003"


def mix(pick: dict[str, Any]) -> list[Query]:
    """The queries, for the manifest's ``pick`` (see ``population.describe``)."""
    ident = quote(pick["identifier"], safe="")
    pid = f"Patient/{pick['id']}"
    hba1c = quote(f"{c.LOINC}|{c.HBA1C}", safe="")
    visit = date.fromisoformat(pick["visit"])
    week_from = (visit - timedelta(days=3)).isoformat()
    week_to = (visit + timedelta(days=4)).isoformat()
    diabetes = quote(f"{c.SNOMED}|{DIABETES}", safe="")
    hypertension = quote(f"{c.SNOMED}|{HYPERTENSION}", safe="")
    return [
        Query("token-identifier", "token", f"/fhir/Patient?identifier={ident}", True,
              "one Patient by MRN system|value"),
        Query("token-code", "token", f"/fhir/Observation?code={hba1c}", False,
              "first page of HbA1c results (diabetics, most visits)"),
        Query("token-patient-code", "token+reference",
              f"/fhir/Observation?patient={pid}&code={hba1c}", True,
              "one patient's HbA1c results"),
        Query("string-given", "string", f"/fhir/Patient?given={pick['given']}", True,
              "given name + number, as Synthea writes them (about one patient)"),
        Query("string-family", "string", f"/fhir/Patient?family={pick['family']}", False,
              "a family name shared by ~1/60 of the patients"),
        Query("date-range", "date", f"/fhir/Encounter?date=ge{week_from}&date=lt{week_to}",
              False, "Encounters in one week (grows with the data)"),
        Query("date-range-patient", "date+reference",
              f"/fhir/Observation?patient={pid}&date=ge{week_from}&date=lt{week_to}", True,
              "one patient's Observations in one week"),
        Query("chain-1", "chain", f"/fhir/Observation?subject:Patient.identifier={ident}",
              True, "Observations of the patient with this identifier"),
        Query("chain-2", "chain (2 levels)",
              f"/fhir/Condition?encounter.subject:Patient.identifier={ident}", True,
              "Conditions whose encounter's patient has this identifier"),
        Query("has", "_has", f"/fhir/Patient?_has:Encounter:subject:date={visit}", True,
              "Patients with an Encounter on one day"),
        Query("has-broad", "_has", f"/fhir/Patient?_has:Condition:subject:code={diabetes}",
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
        Query("sort-broad", "_sort+filter", f"/fhir/Observation?code={hba1c}&_sort=-date",
              False, "HbA1c results, latest first"),
        Query("summary-count", "_summary=count",
              f"/fhir/Observation?code={hba1c}&_summary=count", False,
              "count of HbA1c results"),
        Query("total-accurate", "_total=accurate",
              f"/fhir/Condition?code={hypertension}&_total=accurate", False,
              "first page of hypertension Conditions with the exact total"),
        Query("page-first", "paging", "/fhir/Observation?category=laboratory&_count=100",
              False, "first page of all lab Observations (100 a page)"),
        Query("everything", "$everything", f"/fhir/{pid}/$everything", True,
              "the patient's whole record (first page) with what it refers to"),
        Query("compartment", "compartment", f"/fhir/{pid}/Observation", True,
              "compartment search: the patient's Observations (first page)"),
        Query("read (floor)", "read", f"/fhir/{pid}", True,
              "GET of one Patient: HTTP + framework cost without search"),
    ]
