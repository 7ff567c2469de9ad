"""A token for patient A never returns, counts or reveals anything of patient B, over
HTTP, through every search feature and interaction.

The data (a module's own database) is shaped like Synthea's: two Patients, each with
Encounters, Observations referencing them and Conditions, one Organization and one
Practitioner both Patients point to, a deleted and an updated Observation of B's, and
one Observation of A's whose performer is B (in both compartments: A may see it, but
never B through it). Everything is loaded with a ``system/*.*`` token; the run with
Redis reads B's resources with that token first, so that the cache holds them.

The token under test is ``patient/*.*`` for A: every check compares the keys
(``Type/id``) of the resources returned with what A may see, exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis

from tests.conftest import run_token, scratch_database
from tests.integration.auth.conftest import FHIR_JSON, Smart, put, start_smart

pytestmark = pytest.mark.xdist_group("auth-leaks")

T = run_token()
SYS = "urn:leak-test"
ORG, PR = f"lorg-{T}", f"lpr-{T}"
A, B = f"la-{T}", f"lb-{T}"
FAMILY = {A: f"Alf{T}", B: f"Zed{T}"}
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CAT = "http://terminology.hl7.org/CodeSystem/observation-category"


def resources_of(p: str) -> list[dict[str, Any]]:
    """One patient's record: the Patient, 2 Encounters, 3 Observations, 2 Conditions."""
    subject = {"reference": f"Patient/{p}"}
    out: list[dict[str, Any]] = [{
        "resourceType": "Patient", "id": p, "name": [{"family": FAMILY[p]}],
        "identifier": [{"system": SYS, "value": p}], "gender": "female",
        "birthDate": "1970-01-01", "managingOrganization": {"reference": f"Organization/{ORG}"},
        "generalPractitioner": [{"reference": f"Practitioner/{PR}"}]}]
    for n in (1, 2):
        out.append({"resourceType": "Encounter", "id": f"{p}-e{n}", "status": "finished",
                    "class": {"system": ACT, "code": "AMB"}, "subject": subject,
                    "serviceProvider": {"reference": f"Organization/{ORG}"},
                    "participant": [{"individual": {"reference": f"Practitioner/{PR}"}}],
                    "period": {"start": f"2020-0{n}-01T10:00:00Z"}})
    for n, (code, cat, enc) in enumerate([("common", "laboratory", 1),
                                          ("common", "vital-signs", 2),
                                          (f"only-{p}", "laboratory", None)], start=1):
        obs: dict[str, Any] = {
            "resourceType": "Observation", "id": f"{p}-o{n}", "status": "final",
            "category": [{"coding": [{"system": CAT, "code": cat}]}],
            "code": {"coding": [{"system": SYS, "code": code}]}, "subject": subject,
            "effectiveDateTime": f"2020-0{n}-01T10:00:00Z",
            "valueQuantity": {"value": 70 + n, "unit": "kg"}}
        if enc is not None:
            obs["encounter"] = {"reference": f"Encounter/{p}-e{enc}"}
        out.append(obs)
    for n in (1, 2):
        out.append({"resourceType": "Condition", "id": f"{p}-c{n}", "subject": subject,
                    "code": {"coding": [{"system": SYS, "code": f"cond-{n}"}]},
                    "encounter": {"reference": f"Encounter/{p}-e{n}"},
                    "asserter": {"reference": f"Practitioner/{PR}"}})
    return out


SHARED_RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": ORG, "name": f"Org{T}"},
    {"resourceType": "Practitioner", "id": PR, "name": [{"family": f"Doc{T}"}]},
]
PERFORMED = {"resourceType": "Observation", "id": f"{A}-perf", "status": "final",
             "code": {"coding": [{"system": SYS, "code": "common"}]},
             "subject": {"reference": f"Patient/{A}"},
             "performer": [{"reference": f"Patient/{B}"}]}
DELETED = {"resourceType": "Observation", "id": f"{B}-del", "status": "final",
           "code": {"coding": [{"system": SYS, "code": "common"}]},
           "subject": {"reference": f"Patient/{B}"}}


def key(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


A_OWN = {key(r) for r in resources_of(A)} | {key(PERFORMED)}
B_OWN = {key(r) for r in resources_of(B)} | {key(DELETED)}
SHARED = {key(r) for r in SHARED_RESOURCES}
A_OBS = {k for k in A_OWN if k.startswith("Observation/")}
A_ENC = {k for k in A_OWN if k.startswith("Encounter/")}
A_COND = {k for k in A_OWN if k.startswith("Condition/")}
PA = f"Patient/{A}"


@dataclass
class World:
    smart: Smart
    a: httpx.Client  # patient/*.* for A
    system: httpx.Client  # system/*.*


@pytest.fixture(scope="module", params=["postgres", pytest.param(
    "postgres+redis", marks=pytest.mark.redis)])
def world(request: pytest.FixtureRequest, database_url: str) -> Iterator[World]:
    redis_url = ""
    if request.param == "postgres+redis":
        redis_url = os.environ.get("REDIS_URL", "")
        if not redis_url:
            pytest.skip("REDIS_URL is not set")
        try:
            with redis.Redis.from_url(redis_url, socket_timeout=2) as r:
                r.ping()
        except (redis.RedisError, OSError) as exc:
            pytest.skip(f"REDIS_URL not reachable: {exc}")
    with scratch_database(database_url, "leaks") as url:
        for smart in start_smart(url, REDIS_URL=redis_url):
            with smart.client(smart.token("system/*.*")) as system, \
                    smart.client(smart.token("patient/*.*", patient=A)) as a:
                for resource in [*SHARED_RESOURCES, *resources_of(A), *resources_of(B),
                                 PERFORMED, DELETED]:
                    put(system, resource)
                updated = {**resources_of(B)[3], "status": "amended"}  # B-o1, version 2
                put(system, updated)
                assert system.delete(f"Observation/{B}-del").status_code in (200, 204)
                for k in sorted(B_OWN):  # into the cache, when there is one
                    system.get(k)
                yield World(smart, a, system)


def entry_keys(bundle: dict[str, Any]) -> list[str]:
    """``Type/id`` of every entry but outcomes: from the resource, else (a history
    deletion) from the request URL."""
    out = []
    for entry in bundle.get("entry", []):
        if entry.get("search", {}).get("mode") == "outcome":
            continue
        resource = entry.get("resource")
        if resource is not None:
            out.append(key(resource))
        else:
            out.append("/".join(entry["request"]["url"].split("/")[:2]))
    return out


def mentions_b(bundle: dict[str, Any]) -> list[str]:
    """Entries (not outcomes, not links) whose fullUrl names one of B's resources."""
    return [e.get("fullUrl", "") for e in bundle.get("entry", [])
            if any(e.get("fullUrl", "").endswith("/" + k) for k in B_OWN)]


def searchset(client: httpx.Client, path: str) -> dict[str, Any]:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["resourceType"] == "Bundle", body
    return body


def check(bundle: dict[str, Any], expected: set[str]) -> None:
    found = entry_keys(bundle)
    assert not set(found) & B_OWN, sorted(set(found) & B_OWN)
    assert not mentions_b(bundle)
    assert set(found) == expected
    assert len(found) == len(set(found)) or bundle["type"] == "history"


# -- read, vread, instance history -----------------------------------------------------------

HIDDEN_READS = {
    "patient": f"Patient/{B}",
    "observation": f"Observation/{B}-o1",
    "observation-updated": f"Observation/{B}-o1",
    "encounter": f"Encounter/{B}-e1",
    "condition": f"Condition/{B}-c2",
    "deleted-not-410": f"Observation/{B}-del",
    "vread-patient": f"Patient/{B}/_history/1",
    "vread-observation-v1": f"Observation/{B}-o1/_history/1",
    "vread-observation-v2": f"Observation/{B}-o1/_history/2",
    "vread-deleted": f"Observation/{B}-del/_history/1",
    "vread-deletion": f"Observation/{B}-del/_history/2",
    "history-patient": f"Patient/{B}/_history",
    "history-observation": f"Observation/{B}-o1/_history",
    "history-deleted": f"Observation/{B}-del/_history",
    "read-summary": f"Patient/{B}?_summary=true",
    "read-elements": f"Observation/{B}-o1?_elements=subject",
}


@pytest.mark.parametrize("name", sorted(HIDDEN_READS))
def test_hidden_reads_are_404(world: World, name: str) -> None:
    path = HIDDEN_READS[name]
    assert world.system.get(path).status_code in (200, 410)  # it is there
    answer = world.a.get(path)
    assert answer.status_code == 404, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert "amended" not in answer.text and FAMILY[B] not in answer.text


def test_conditional_reads_do_not_tell_either(world: World) -> None:
    path = f"Observation/{B}-o1"
    answer = world.a.get(path, headers={"If-None-Match": 'W/"2"'})
    assert answer.status_code == 404
    answer = world.a.get(path, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert answer.status_code == 404
    assert world.a.head(path).status_code == 404


@pytest.mark.parametrize("path", [PA, f"Observation/{A}-o1", f"Observation/{A}-perf",
                                  f"Organization/{ORG}", f"Practitioner/{PR}",
                                  f"Patient/{A}/_history/1"])
def test_what_a_may_see_is_readable(world: World, path: str) -> None:
    assert world.a.get(path).status_code == 200


# -- searches --------------------------------------------------------------------------------

NONE: set[str] = set()
FAM_B = FAMILY[B]
SEARCHES: dict[str, tuple[str, set[str]]] = {
    "type": ("Observation", A_OBS),
    "type-patient": ("Patient", {PA}),
    "type-subject-b": (f"Observation?subject=Patient/{B}", NONE),
    "type-patient-param-b": (f"Observation?patient={B}", NONE),
    "type-family-b": (f"Patient?family={FAM_B}", NONE),
    "type-identifier-b": (f"Patient?identifier={SYS}|{B}", NONE),
    "type-content-b": (f"Patient?_content={FAM_B}", NONE),
    "type-code-only-b": (f"Observation?code={SYS}|only-{B}", NONE),
    "type-performer-b": (f"Observation?performer=Patient/{B}", {f"Observation/{A}-perf"}),
    "id-b": (f"Patient?_id={B}", NONE),
    "id-b-and-a": (f"Observation?_id={B}-o1,{A}-o1,{B}-del", {f"Observation/{A}-o1"}),
    "id-deleted": (f"Observation?_id={B}-del", NONE),
    "last-updated": ("Observation?_lastUpdated=ge2000-01-01", A_OBS),
    "last-updated-and-b": (f"Condition?_lastUpdated=gt2000-01-01&subject=Patient/{B}", NONE),
    "sort": ("Observation?_sort=-_lastUpdated", A_OBS),
    "sort-several": ("Observation?_sort=subject,-date,code", A_OBS),
    "sort-encounter": ("Encounter?_sort=date", A_ENC),
    "elements": ("Observation?_elements=subject,code", A_OBS),
    "summary-true": ("Patient?_summary=true", {PA}),
    "summary-data": ("Condition?_summary=data", A_COND),
    "system-type": ("?_type=Patient,Observation,Encounter,Condition&_count=100", A_OWN),
    "system-id": (f"?_id={A},{B},{B}-o1,{B}-e1", {PA}),
    "system-all": ("?_count=100", A_OWN | SHARED),
    "system-last-updated": ("?_lastUpdated=ge2000-01-01&_count=100", A_OWN | SHARED),
    "system-type-id-b": (f"?_type=Observation,Condition&_id={B}-o1,{B}-c1", NONE),
    "chain-name-b": (f"Observation?subject.name={FAM_B}", NONE),
    "chain-typed-b": (f"Observation?subject:Patient.family={FAM_B}", NONE),
    "chain-identifier-b": (f"Condition?subject:Patient.identifier={SYS}|{B}", NONE),
    "chain-two-hops-b": (f"Observation?encounter.subject.family={FAM_B}", NONE),
    "chain-performer-b": (f"Observation?performer:Patient.family={FAM_B}", NONE),
    "chain-name-a": (f"Observation?subject.name={FAMILY[A]}", A_OBS),
    "chain-common-org": (f"Patient?organization.name=Org{T}", {PA}),
    "chain-encounter-org": (f"Observation?encounter.service-provider.name=Org{T}",
                            {f"Observation/{A}-o1", f"Observation/{A}-o2"}),
    "has-only-b": (f"Patient?_has:Observation:subject:code={SYS}|only-{B}", NONE),
    "has-common": (f"Patient?_has:Observation:subject:code={SYS}|common", {PA}),
    "has-org-through-b": (f"Organization?_has:Patient:organization:family={FAM_B}", NONE),
    "has-practitioner-through-b": (
        f"Practitioner?_has:Patient:general-practitioner:family={FAM_B}", NONE),
    "has-practitioner-through-b-condition": (
        f"Practitioner?_has:Condition:asserter:subject=Patient/{B}", NONE),
    "has-nested-through-b": (
        f"Organization?_has:Patient:organization:_has:Observation:subject:code="
        f"{SYS}|only-{B}", NONE),
    "has-encounter-through-b": (
        f"Encounter?_has:Observation:encounter:code={SYS}|only-{B}", NONE),
    "include-subject": ("Observation?_include=Observation:subject", A_OBS | {PA}),
    "include-performer-b": (f"Observation?_id={A}-perf&_include=Observation:performer",
                            {f"Observation/{A}-perf"}),
    "include-star": ("Observation?_include=*", A_OBS | {PA} | A_ENC),
    "include-iterate": ("Observation?_include=Observation:encounter"
                        "&_include:iterate=Encounter:subject", A_OBS | A_ENC | {PA}),
    "include-organization": ("Patient?_include=Patient:organization", {PA, f"Organization/{ORG}"}),
    "include-of-b-only": (f"Patient?family={FAM_B}&_include=Patient:organization", NONE),
    "revinclude-organization": ("Organization?_revinclude=Patient:organization",
                                {f"Organization/{ORG}", PA}),
    "revinclude-iterate": ("Organization?_revinclude=Patient:organization"
                           "&_revinclude:iterate=Observation:subject",
                           {f"Organization/{ORG}", PA} | A_OBS),
    "revinclude-iterate-encounters": (
        "Organization?_revinclude=Encounter:service-provider"
        "&_revinclude:iterate=Observation:encounter&_revinclude:iterate=Condition:encounter",
        {f"Organization/{ORG}"} | A_ENC | A_COND
        | {f"Observation/{A}-o1", f"Observation/{A}-o2"}),
    "revinclude-practitioner": ("Practitioner?_revinclude=Patient:general-practitioner"
                                "&_revinclude=Condition:asserter",
                                {f"Practitioner/{PR}", PA} | A_COND),
    "revinclude-patient": ("Patient?_revinclude=Observation:subject"
                           "&_revinclude=Condition:subject&_revinclude=Encounter:subject",
                           A_OWN),
    "revinclude-performer-b": (f"Patient?_id={B}&_revinclude=Observation:performer", NONE),
    "revinclude-star": ("Organization?_revinclude=*", {f"Organization/{ORG}", PA} | A_ENC),
    "compartment-b-observation": (f"Patient/{B}/Observation", {f"Observation/{A}-perf"}),
    "compartment-b-condition": (f"Patient/{B}/Condition", NONE),
    "compartment-b-encounter": (f"Patient/{B}/Encounter?_count=100", NONE),
    "compartment-b-all": (f"Patient/{B}/*?_count=100", {f"Observation/{A}-perf"}),
    "compartment-b-all-typed": (f"Patient/{B}/*?_type=Condition,Encounter", NONE),
    "compartment-a-observation": (f"Patient/{A}/Observation", A_OBS),
    "compartment-b-with-include": (
        f"Patient/{B}/Observation?_include=Observation:subject"
        "&_include=Observation:performer", {f"Observation/{A}-perf", PA}),
}


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_search(world: World, name: str) -> None:
    path, expected = SEARCHES[name]
    check(searchset(world.a, path), expected)


@pytest.mark.parametrize("name", ["type-subject-b", "has-org-through-b", "chain-name-b",
                                  "include-of-b-only", "compartment-b-condition"])
def test_the_same_searches_find_bs_resources_with_a_system_token(world: World,
                                                                 name: str) -> None:
    """The hiding is the scope's doing: without it these searches do find B's data."""
    found = set(entry_keys(searchset(world.system, SEARCHES[name][0])))
    assert found & (B_OWN | SHARED)


def test_post_search(world: World) -> None:
    answer = world.a.post("Observation/_search", data={"subject": f"Patient/{B}"})
    assert answer.status_code == 200, answer.text
    check(answer.json(), NONE)
    answer = world.a.post("Observation/_search", data={"code": f"{SYS}|common"})
    check(answer.json(), A_OBS - {f"Observation/{A}-o3"})


def test_compartment_a_all(world: World) -> None:
    # whatever the server counts in A's compartment, it is A's (or common to both) and all of it
    seen = set(entry_keys(searchset(world.a, f"Patient/{A}/*?_count=100")))
    every = set(entry_keys(searchset(world.system, f"Patient/{A}/*?_count=100")))
    assert seen == every - B_OWN
    assert A_OWN - {PA} <= seen


def test_everything_of_a_is_as_seen_by_a(world: World) -> None:
    seen = searchset(world.a, f"Patient/{A}/$everything?_count=100")
    every = searchset(world.system, f"Patient/{A}/$everything?_count=100")
    check(seen, set(entry_keys(every)) - B_OWN)
    assert set(entry_keys(seen)) >= A_OWN
    assert set(entry_keys(seen)) >= SHARED


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_everything_of_b_is_404(world: World, method: str) -> None:
    body = {"resourceType": "Parameters", "parameter": []} if method == "POST" else None
    answer = world.a.request(method, f"Patient/{B}/$everything", json=body)
    assert answer.status_code == 404, answer.text
    assert world.system.get(f"Patient/{B}/$everything").status_code == 200


# -- totals ----------------------------------------------------------------------------------

TOTALS: dict[str, tuple[str, int]] = {
    "summary-count-observation": ("Observation?_summary=count", len(A_OBS)),
    "summary-count-patient": ("Patient?_summary=count", 1),
    "summary-count-condition-b": (f"Condition?subject=Patient/{B}&_summary=count", 0),
    "summary-count-chain-b": (f"Observation?subject.family={FAM_B}&_summary=count", 0),
    "summary-count-has-b": (
        f"Organization?_has:Patient:organization:family={FAM_B}&_summary=count", 0),
    "summary-count-system": ("?_type=Patient,Observation&_summary=count", len(A_OBS) + 1),
    "summary-count-system-all": ("?_summary=count", len(A_OWN | SHARED)),
    "summary-count-compartment-b": (f"Patient/{B}/Condition?_summary=count", 0),
    "count-zero": ("Observation?_count=0", len(A_OBS)),
    "total-accurate": ("Observation?_total=accurate&_count=1", len(A_OBS)),
    "total-accurate-condition": ("Condition?_total=accurate", len(A_COND)),
    "total-accurate-encounter": ("Encounter?_total=accurate&_count=1", len(A_ENC)),
    "total-accurate-system": ("?_total=accurate&_count=1", len(A_OWN | SHARED)),
    "total-accurate-id-b": (f"Patient?_id={B}&_total=accurate", 0),
    "total-accurate-compartment-b": (f"Patient/{B}/*?_total=accurate", 1),
}


@pytest.mark.parametrize("name", sorted(TOTALS))
def test_totals(world: World, name: str) -> None:
    path, expected = TOTALS[name]
    bundle = searchset(world.a, path)
    assert bundle.get("total") == expected, (path, bundle.get("total"))
    assert not set(entry_keys(bundle)) & B_OWN


# -- history ---------------------------------------------------------------------------------

HISTORIES: dict[str, tuple[str, set[str]]] = {
    "type-observation": ("Observation/_history?_count=100", A_OBS),
    "type-patient": ("Patient/_history?_count=100", {PA}),
    "type-condition-since": ("Condition/_history?_since=2000-01-01T00:00:00Z", A_COND),
    "system": ("_history?_count=100", A_OWN | SHARED),
    "system-since": ("_history?_since=2000-01-01T00:00:00Z&_count=100", A_OWN | SHARED),
    "instance-a": (f"{PA}/_history", {PA}),
    "instance-performed": (f"Observation/{A}-perf/_history", {f"Observation/{A}-perf"}),
}


@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_history(world: World, name: str) -> None:
    path, expected = HISTORIES[name]
    bundle = searchset(world.a, path)
    assert bundle["type"] == "history"
    check(bundle, expected)
    assert all(e["request"]["method"] == "PUT" for e in bundle["entry"])  # no deletion seen


# -- paging: every page of every next link -------------------------------------------------

#: (first page, everything A may see of it, whether pages carry the total, pages at least)
PAGED: dict[str, tuple[str, set[str], bool, int]] = {
    "observation": ("Observation?_count=1&_total=accurate", A_OBS, True, 4),
    "observation-sorted": ("Observation?_count=1&_sort=-_lastUpdated&_total=accurate",
                           A_OBS, True, 4),
    "system": ("?_count=2&_total=accurate", A_OWN | SHARED, True, 6),
    "system-typed": ("?_type=Observation,Condition,Encounter&_count=3&_total=accurate",
                     A_OBS | A_COND | A_ENC, True, 3),
    "revinclude": ("Patient?_revinclude=Observation:subject&_count=1", A_OBS | {PA}, False, 1),
    "compartment-b": (f"Patient/{B}/*?_count=1&_total=accurate",
                      {f"Observation/{A}-perf"}, True, 1),
    "history-system": ("_history?_count=2", A_OWN | SHARED, False, 6),
    "history-type": ("Observation/_history?_count=1", A_OBS, False, 4),
    "chain": (f"Observation?subject.name={FAMILY[A]}&_count=1&_total=accurate", A_OBS, True, 4),
}


@pytest.mark.parametrize("name", sorted(PAGED))
def test_paging_links(world: World, name: str) -> None:
    path, expected, with_total, at_least = PAGED[name]
    seen: list[str] = []
    url: str | None = path
    pages = 0
    while url is not None:
        bundle = searchset(world.a, url)
        pages += 1
        assert pages < 50, "the next links do not end"
        found = entry_keys(bundle)
        assert not set(found) & B_OWN, (url, found)
        if with_total:
            assert bundle["total"] == len(expected), url
        seen += found
        url = next((link["url"] for link in bundle.get("link", [])
                    if link["relation"] == "next"), None)
        if url is not None:
            assert B not in url.split("?", 1)[0]
    assert set(seen) == expected
    assert pages >= at_least


# -- Bundles ---------------------------------------------------------------------------------


def post_bundle(world: World, kind: str, entries: list[dict[str, Any]]) -> httpx.Response:
    return world.a.post("", json={"resourceType": "Bundle", "type": kind, "entry": entries},
                        headers={"Content-Type": FHIR_JSON})


def get_entry(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


BUNDLE_READS = [f"Patient/{B}", f"Observation/{B}-o1", f"Observation/{B}-o1/_history/2",
                f"Patient/{B}/_history", f"Observation/{B}-del", f"Condition/{B}-c1"]
BUNDLE_SEARCHES: list[tuple[str, set[str]]] = [
    (f"Observation?subject=Patient/{B}", NONE),
    (f"Patient?_id={A},{B}", {PA}),
    (f"Organization?_has:Patient:organization:family={FAM_B}", NONE),
    (f"Patient/{B}/Condition", NONE),
    ("Observation?_include=Observation:performer&_summary=count", NONE),
    (f"?_type=Patient,Condition&_id={B},{B}-c1", NONE),
    ("Observation/_history", A_OBS),
    (f"Observation?subject.name={FAM_B}", NONE),
]


def test_batch_get_entries(world: World) -> None:
    entries = [get_entry(u) for u in BUNDLE_READS] + [
        get_entry(u) for u, _ in BUNDLE_SEARCHES]
    answer = post_bundle(world, "batch", entries)
    assert answer.status_code == 200, answer.text
    out = answer.json()["entry"]
    for entry, url in zip(out[:len(BUNDLE_READS)], BUNDLE_READS, strict=True):
        assert entry["response"]["status"].startswith("404"), (url, entry)
        assert FAM_B not in str(entry) and "amended" not in str(entry)
    for entry, (url, expected) in zip(out[len(BUNDLE_READS):], BUNDLE_SEARCHES, strict=True):
        assert entry["response"]["status"].startswith("200"), (url, entry)
        check(entry["resource"], expected)
    counted = out[len(BUNDLE_READS) + 4]["resource"]
    assert counted["total"] == len(A_OBS)


def test_transaction_get_entries(world: World) -> None:
    answer = post_bundle(world, "transaction", [get_entry(u) for u, _ in BUNDLE_SEARCHES])
    assert answer.status_code == 200, answer.text
    for entry, (_, expected) in zip(answer.json()["entry"], BUNDLE_SEARCHES, strict=True):
        check(entry["resource"], expected)


@pytest.mark.parametrize("url", BUNDLE_READS[:3])
def test_transaction_with_a_hidden_read_fails_without_content(world: World, url: str) -> None:
    answer = post_bundle(world, "transaction", [get_entry(PA), get_entry(url)])
    assert answer.status_code == 404, answer.text
    assert FAM_B not in answer.text and "amended" not in answer.text


def b_version(world: World, path: str) -> str:
    answer = world.system.get(path)
    assert answer.status_code == 200
    return str(answer.json()["meta"]["versionId"])


def test_bundle_writes_to_bs_resources_are_refused(world: World) -> None:
    path = f"Observation/{B}-o2"
    before = b_version(world, path)
    changed = {**resources_of(B)[4], "status": "cancelled"}
    for kind in ("batch", "transaction"):
        answer = post_bundle(world, kind, [
            {"fullUrl": f"{world.smart.base}/{path}", "resource": changed,
             "request": {"method": "PUT", "url": path}},
            {"request": {"method": "DELETE", "url": f"Condition/{B}-c1"}}])
        if kind == "transaction":
            assert answer.status_code == 403, answer.text
        else:
            statuses = [e["response"]["status"] for e in answer.json()["entry"]]
            assert all(s.startswith("403") for s in statuses), statuses
    assert b_version(world, path) == before
    assert world.system.get(f"Condition/{B}-c1").status_code == 200


# -- conditional writes whose criteria match B's resources ---------------------------------


def test_conditional_delete_does_not_reach_b(world: World) -> None:
    for criteria in (f"code={SYS}|only-{B}", f"subject=Patient/{B}", f"_id={B}-o2",
                     f"subject.family={FAM_B}"):
        answer = world.a.delete(f"Observation?{criteria}")
        assert answer.status_code in (200, 204), (criteria, answer.text)
    assert world.a.delete(f"Patient?identifier={SYS}|{B}").status_code in (200, 204)
    for k in (f"Observation/{B}-o2", f"Observation/{B}-o3", f"Patient/{B}"):
        assert world.system.get(k).status_code == 200, k


def test_conditional_patch_does_not_reach_b(world: World) -> None:
    path = f"Observation/{B}-o3"
    before = b_version(world, path)
    answer = world.a.patch(f"Observation?code={SYS}|only-{B}",
                           json=[{"op": "replace", "path": "/status", "value": "cancelled"}],
                           headers={"Content-Type": "application/json-patch+json"})
    assert answer.status_code == 404, answer.text
    assert b_version(world, path) == before


def test_conditional_create_does_not_answer_with_bs_resource(world: World) -> None:
    body = {**resources_of(B)[5]}  # B-o3, for B: had it matched, 200 with B's resource
    del body["id"]
    answer = world.a.post("Observation", json=body, headers={
        "Content-Type": FHIR_JSON, "If-None-Exist": f"code={SYS}|only-{B}"})
    assert answer.status_code == 403, answer.text  # a create, and for B: refused
    assert world.system.get("Observation", params={"code": f"{SYS}|only-{B}"}).json()[
        "entry"][0]["resource"]["id"] == f"{B}-o3"


def test_conditional_update_with_bs_criteria_creates_for_a(world: World) -> None:
    """Criteria that only B's Observation matches find nothing for A: the update is a
    create of A's (had it matched B's, 403). Last: it adds one of A's Observations."""
    path = f"Observation/{B}-o3"
    before = b_version(world, path)
    body = {**resources_of(A)[5]}
    del body["id"]
    body["code"] = {"coding": [{"system": SYS, "code": f"only-{B}"}]}
    answer = world.a.put(f"Observation?code={SYS}|only-{B}", json=body,
                         headers={"Content-Type": FHIR_JSON})
    assert answer.status_code == 201, answer.text
    assert answer.json()["id"] != f"{B}-o3"
    assert b_version(world, path) == before
    assert world.system.get(path).json()["subject"]["reference"] == f"Patient/{B}"


def test_urls_with_bs_id_quoted(world: World) -> None:
    assert world.a.get(f"Patient/{quote(B)}").status_code == 404
