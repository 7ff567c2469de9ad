"""The query mix of ``bench.million``: ``bench/search_queries.py``'s shared mix on the
generated population, its own string queries, plus the per-patient ``$everything`` and
compartment search and the read floor.

Every value comes from the population manifest's patient (``pick``), the same patient at
every population size (see ``bench/population.py``), so a selective query returns the
same matches at 100k and at 1M and only the database around it grows.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from bench import population_codes as c
from bench.search_queries import MixValues, Query, floor, shared_mix

DIABETES = "44054006"
HYPERTENSION = "38341003"


def mix(pick: dict[str, Any]) -> list[Query]:
    """The queries, for the manifest's ``pick`` (see ``population.describe``)."""
    values = MixValues(pick["identifier"], pick["id"], date.fromisoformat(pick["visit"]),
                       f"{c.LOINC}|{c.HBA1C}", f"{c.SNOMED}|{DIABETES}",
                       f"{c.SNOMED}|{HYPERTENSION}")
    pid = f"Patient/{pick['id']}"
    strings = [
        Query("string-given", "string", f"/fhir/Patient?given={pick['given']}", True,
              "given name + number, as Synthea writes them (about one patient)"),
        Query("string-family", "string", f"/fhir/Patient?family={pick['family']}", False,
              "a family name shared by ~1/60 of the patients"),
    ]
    return [
        # The week's Encounters grow with the population: not selective here.
        *shared_mix(values, strings, week_selective=False),
        Query("everything", "$everything", f"/fhir/{pid}/$everything", True,
              "the patient's whole record (first page) with what it refers to"),
        Query("compartment", "compartment", f"/fhir/{pid}/Observation", True,
              "compartment search: the patient's Observations (first page)"),
        floor(pick["id"]),
    ]
