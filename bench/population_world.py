"""The shared world of ``bench/population.py``: Organizations, Locations, Practitioners.

Synthea writes them once per run, in ``hospitalInformation`` and
``practitionerInformation`` Bundles of conditional creates; so does this. Also the small
JSON helpers both modules use.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Any

from bench import population_codes as c

#: Provider organizations (each with a Location and two Practitioners) and payers.
PROVIDERS = 40
PAYERS = 10

Resource = dict[str, Any]


def uuid_of(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def ref(rtype: str, rid: str) -> dict[str, str]:
    return {"reference": f"{rtype}/{rid}"}


def cc(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}],
            "text": display}


def instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


# --- the shared world -------------------------------------------------------------------


def world(seed: int) -> dict[str, list[Resource]]:
    """Organizations (providers and payers), Practitioners and Locations of a seed."""
    rng = random.Random(f"{seed}:world")
    out: dict[str, list[Resource]] = {"Organization": [], "Location": [], "Practitioner": []}
    for n in range(PROVIDERS + PAYERS):
        payer = n >= PROVIDERS
        city, postal = c.CITIES[n % len(c.CITIES)]
        kind = ("pay", "Payer") if payer else ("prov", "Healthcare Provider")
        value = f"payer-{n}" if payer else f"primary_care-{100000 + n * 7919}"
        out["Organization"].append({
            "resourceType": "Organization", "id": uuid_of(rng), "active": True,
            "identifier": [{"system": c.SYNTHEA, "value": value}],
            "name": f"{city.upper()} {'HEALTH PLAN' if payer else 'HEALTH CENTER'} {n}",
            "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                  "organization-type", "code": kind[0],
                                  "display": kind[1]}]}],
            "address": [{"line": [f"{10 + n} MAIN ST"], "city": city, "state": "MA",
                         "postalCode": postal, "country": "US"}]})
    for n, org in enumerate(out["Organization"][:PROVIDERS]):
        out["Location"].append({
            "resourceType": "Location", "id": uuid_of(rng), "status": "active",
            "identifier": [{"system": c.SYNTHEA, "value": f"location-{n}"}],
            "name": org["name"], "managingOrganization": ref("Organization", org["id"]),
            "address": org["address"][0]})
        for k in range(2):
            out["Practitioner"].append({
                "resourceType": "Practitioner", "id": uuid_of(rng), "active": True,
                "identifier": [{"system": c.NPI, "value": str(9999000000 + n * 10 + k)}],
                "name": [{"family": rng.choice(c.FAMILIES),
                          "given": [rng.choice(c.GIVENS)], "prefix": ["Dr."]}],
                "gender": rng.choice(("male", "female"))})
    return out


def shared_bundles(seed: int) -> dict[str, Resource]:
    """Synthea's two shared-resource transaction Bundles (conditional creates)."""
    shared = world(seed)

    def bundle(resources: list[Resource]) -> Resource:
        return {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
             "request": {"method": "POST", "url": r["resourceType"],
                         "ifNoneExist": "identifier={system}|{value}".format(
                             **r["identifier"][0])}} for r in resources]}

    return {f"hospitalInformation{seed}.json":
            bundle(shared["Organization"] + shared["Location"]),
            f"practitionerInformation{seed}.json": bundle(shared["Practitioner"])}
