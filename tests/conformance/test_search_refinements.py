"""Search refinements of issue 8 over HTTP: chains into contained resources, string
search without punctuation and by the parts of a family name, case-insensitive contact
points, ``:missing`` on contained references, untyped chains."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

HEADERS = {"Content-Type": "application/fhir+json"}
EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "fhir-r4-examples"


def put(client: httpx.Client, resource: dict[str, Any]) -> None:
    response = client.put(f"/{resource['resourceType']}/{resource['id']}",
                          content=orjson.dumps(resource), headers=HEADERS)
    assert response.status_code in (200, 201), response.text


def ids(client: httpx.Client, path: str, **params: str) -> set[str]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return {e["resource"]["id"] for e in response.json().get("entry", [])
            if e.get("search", {}).get("mode") == "match"}


@pytest.fixture(scope="module")
def tag(client: httpx.Client) -> str:
    tag = f"r{uuid.uuid4().hex[:10]}"
    sec = [{"system": "urn:refine", "code": tag}]
    # The official MedicationRequest examples, under ids of this run.
    for path in sorted(EXAMPLES.glob("MedicationRequest*.json")):
        resource = orjson.loads(path.read_bytes())
        resource["id"] = f"{tag}-{resource['id']}"
        resource["meta"] = {"tag": sec}
        put(client, resource)
    put(client, {"resourceType": "Medication", "id": f"{tag}-med", "meta": {"tag": sec},
                 "code": {"coding": [{"system": "urn:med", "code": "real"}]}})
    put(client, {"resourceType": "MedicationRequest", "id": f"{tag}-real", "meta": {"tag": sec},
                 "status": "active", "intent": "order", "subject": {"reference": "Patient/x"},
                 "medicationReference": {"reference": f"Medication/{tag}-med"}})
    # Two contained Medications: only the referenced one counts.
    put(client, {"resourceType": "MedicationRequest", "id": f"{tag}-two", "meta": {"tag": sec},
                 "status": "active", "intent": "order", "subject": {"reference": "Patient/x"},
                 "contained": [
                     {"resourceType": "Medication", "id": "a",
                      "code": {"coding": [{"system": "urn:med", "code": "A"}]},
                      "manufacturer": {"reference": "#o"}},
                     {"resourceType": "Medication", "id": "b",
                      "code": {"coding": [{"system": "urn:med", "code": "B"}]}},
                     {"resourceType": "Organization", "id": "o", "name": "Acme Pharma"}],
                 # dom-3: a contained resource is referred to; #b not by `medication`
                 "extension": [{"url": "urn:ext:alternative",
                                "valueReference": {"reference": "#b"}}],
                 "medicationReference": {"reference": "#a"}})
    # A contained Patient as subject (":missing" must not count it as missing).
    put(client, {"resourceType": "Observation", "id": f"{tag}-newborn", "meta": {"tag": sec},
                 "status": "final", "code": {"text": "weight"},
                 "contained": [{"resourceType": "Patient", "id": "newborn",
                                "name": [{"family": "van den Heuvel"}]}],
                 "subject": {"reference": "#newborn"}})
    put(client, {"resourceType": "Observation", "id": f"{tag}-nosubject", "meta": {"tag": sec},
                 "status": "final", "code": {"text": "weight"}})
    put(client, {"resourceType": "Organization", "id": f"{tag}-ent", "meta": {"tag": sec},
                 "name": "Burgers UMC Ear,Nose,Throat unit",
                 "telecom": [{"system": "email", "value": "ENT@Burgers.example"}]})
    put(client, {"resourceType": "Patient", "id": f"{tag}-heuvel", "meta": {"tag": sec},
                 "name": [{"family": "van den Heuvel", "given": ["Pieter"]}],
                 "telecom": [{"system": "email", "value": "Pieter.vdHeuvel@Example.NL"},
                             {"system": "phone", "value": "+31 6 1234"}]})
    put(client, {"resourceType": "Patient", "id": f"{tag}-other", "meta": {"tag": sec},
                 "name": [{"family": "Heuvelmans"}], "identifier": [
                     {"system": "urn:x", "value": "Pieter.vdHeuvel@Example.NL"}]})
    return tag


def test_chain_into_contained_medication(client: httpx.Client, tag: str) -> None:
    found = ids(client, "/MedicationRequest", **{
        "medication.code": "http://snomed.info/sct|430127000", "_tag": f"urn:refine|{tag}"})
    assert found == {f"{tag}-medrx0301", f"{tag}-medrx0333"}
    # every example pointing to a contained Medication with a code is found by it
    for path in sorted(EXAMPLES.glob("MedicationRequest*.json")):
        example = orjson.loads(path.read_bytes())
        ref = (example.get("medicationReference") or {}).get("reference", "")
        med = next((c for c in example.get("contained", []) if "#" + c["id"] == ref), None)
        for coding in (med or {}).get("code", {}).get("coding", []):
            assert f"{tag}-{example['id']}" in ids(client, "/MedicationRequest", **{
                "medication.code": f"{coding['system']}|{coding['code']}",
                "_tag": f"urn:refine|{tag}"}), example["id"]


def test_chain_matches_the_referenced_contained_resource_only(client: httpx.Client,
                                                              tag: str) -> None:
    t = {"_tag": f"urn:refine|{tag}"}
    assert ids(client, "/MedicationRequest", **{"medication.code": "urn:med|A", **t}) == {
        f"{tag}-two"}
    assert ids(client, "/MedicationRequest", **{"medication.code": "urn:med|B", **t}) == set()
    # a real Medication as before
    assert ids(client, "/MedicationRequest", **{"medication.code": "urn:med|real", **t}) == {
        f"{tag}-real"}
    # two hops inside the container: #a -> #o
    assert ids(client, "/MedicationRequest", **{
        "medication.manufacturer.name": "acme", **t}) == {f"{tag}-two"}
    # untyped chain into a contained Patient
    assert ids(client, "/Observation", **{"subject.family": "heuvel", **t}) == {
        f"{tag}-newborn"}
    assert ids(client, "/Observation", **{"subject:Patient.name": "van den", **t}) == {
        f"{tag}-newborn"}


def test_missing_does_not_count_contained_references(client: httpx.Client,
                                                     tag: str) -> None:
    t = {"_tag": f"urn:refine|{tag}"}
    assert ids(client, "/Observation", **{"subject:missing": "true", **t}) == {
        f"{tag}-nosubject"}
    assert ids(client, "/Observation", **{"subject:missing": "false", **t}) == {
        f"{tag}-newborn"}


def test_string_ignores_punctuation(client: httpx.Client, tag: str) -> None:
    t = {"_tag": f"urn:refine|{tag}"}
    assert ids(client, "/Organization", name="Burgers UMC Ear Nose", **t) == {f"{tag}-ent"}
    assert ids(client, "/Organization", name="burgers umc ear,nose", **t) == {f"{tag}-ent"}
    assert ids(client, "/Organization", **{"name:exact": "Burgers UMC Ear Nose", **t}) == set()


def test_family_name_parts(client: httpx.Client, tag: str) -> None:
    t = {"_tag": f"urn:refine|{tag}"}
    assert ids(client, "/Patient", family="Heuvel", **t) == {f"{tag}-heuvel", f"{tag}-other"}
    assert ids(client, "/Patient", family="van den Heuvel", **t) == {f"{tag}-heuvel"}
    assert ids(client, "/Patient", name="heuvel", **t) == {f"{tag}-heuvel", f"{tag}-other"}
    assert ids(client, "/Patient", **{"family:exact": "Heuvel", **t}) == set()
    assert ids(client, "/Patient", **{"family:exact": "van den Heuvel", **t}) == {
        f"{tag}-heuvel"}
    # sorting is by the whole name: "heuvelmans" < "van den heuvel"
    response = client.get("/Patient", params={"_sort": "family", **t})
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [
        f"{tag}-other", f"{tag}-heuvel"]


def test_contact_points_are_case_insensitive(client: httpx.Client, tag: str) -> None:
    t = {"_tag": f"urn:refine|{tag}"}
    assert ids(client, "/Patient", email="pieter.vdheuvel@example.nl", **t) == {
        f"{tag}-heuvel"}
    assert ids(client, "/Patient", telecom="PIETER.VDHEUVEL@EXAMPLE.NL", **t) == {
        f"{tag}-heuvel"}
    # other tokens stay case-sensitive
    assert ids(client, "/Patient", identifier="urn:x|pieter.vdheuvel@example.nl", **t) == set()
    assert ids(client, "/Patient", identifier="urn:x|Pieter.vdHeuvel@Example.NL", **t) == {
        f"{tag}-other"}
