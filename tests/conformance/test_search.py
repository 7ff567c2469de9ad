"""Search over HTTP: parameter types, modifiers, chains, _has, includes, sort, paging."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

HEADERS = {"Content-Type": "application/fhir+json"}


def put(client: httpx.Client, resource: dict[str, Any]) -> dict[str, Any]:
    response = client.put(f"/{resource['resourceType']}/{resource['id']}",
                          content=orjson.dumps(resource), headers=HEADERS)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode") == mode]


def find(client: httpx.Client, path: str, **params: str) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def tag(client: httpx.Client) -> str:
    """A unique tag so each run's resources are found apart from other tests' (and
    from the other client's run)."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def world(client: httpx.Client, tag: str) -> Iterator[dict[str, str]]:
    """A small hospital: an organization, patients, encounters, observations."""
    sec = {"system": "urn:test", "code": tag}
    org = put(client, {"resourceType": "Organization", "id": f"{tag}-org", "meta": {"tag": [sec]},
                       "name": "Saint Zoë Hospital",
                       "identifier": [{"system": "urn:org", "value": f"{tag}-O1"}]})
    patients = [
        {"resourceType": "Patient", "id": f"{tag}-p1", "meta": {"tag": [sec]},
         "name": [{"family": "Müller", "given": ["Zoë"]}], "gender": "female",
         "birthDate": "1980-05-17",
         "managingOrganization": {"reference": f"Organization/{org['id']}"},
         "identifier": [{"system": "urn:mrn", "value": f"{tag}-1", "type": {"coding": [
             {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}],
         "telecom": [{"system": "phone", "value": "555-0101"}]},
        {"resourceType": "Patient", "id": f"{tag}-p2", "meta": {"tag": [sec]},
         "name": [{"family": "Miller", "given": ["Adam"]}], "gender": "male",
         "birthDate": "1975", "identifier": [{"system": "urn:mrn", "value": f"{tag}-2"}]},
        {"resourceType": "Patient", "id": f"{tag}-p3", "meta": {"tag": [sec]},
         "name": [{"family": "Smith"}], "gender": "other", "active": True},
    ]
    for p in patients:
        put(client, p)
    encounters = [
        {"resourceType": "Encounter", "id": f"{tag}-e1", "meta": {"tag": [sec]},
         "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
         "subject": {"reference": f"Patient/{tag}-p1"},
         "period": {"start": "2021-03-01T10:00:00Z", "end": "2021-03-01T11:00:00Z"}},
        {"resourceType": "Encounter", "id": f"{tag}-e2", "meta": {"tag": [sec]},
         "status": "in-progress",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
         "subject": {"reference": f"Patient/{tag}-p2"},
         "period": {"start": "2022-01-10"}},
    ]
    for e in encounters:
        put(client, e)
    observations = [
        {"resourceType": "Observation", "id": f"{tag}-o{i}", "meta": {"tag": [sec]},
         "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": code}], "text": text},
         "subject": {"reference": f"Patient/{tag}-p{pat}"},
         "encounter": {"reference": f"Encounter/{tag}-e{pat}"} if pat < 3 else None,
         "effectiveDateTime": date,
         "valueQuantity": {"value": value, "unit": "kg", "system": "http://unitsofmeasure.org",
                           "code": "kg"}}
        for i, (code, text, pat, date, value) in enumerate([
            ("29463-7", "Body weight", 1, "2021-03-01", 72.5),
            ("29463-7", "Body weight", 2, "2022-01-10", 90),
            ("8302-2", "Body height", 1, "2021-03-01", 165),
            ("29463-7", "Body Weight", 3, "2023-06-30T08:00:00+02:00", 55.25),
        ], start=1)
    ]
    for o in observations:
        put(client, {k: v for k, v in o.items() if v is not None})
    yield {"tag": tag}


def tagged(tag: str, **params: str) -> dict[str, str]:
    return {"_tag": f"urn:test|{tag}", **params}


def test_token_variants(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    assert sorted(ids(find(client, "/Patient", **tagged(tag, gender="female")))) == [f"{tag}-p1"]
    assert sorted(ids(find(client, "/Patient", **tagged(tag, gender="female,male")))) == [
        f"{tag}-p1", f"{tag}-p2"]
    assert ids(find(client, "/Patient", identifier=f"urn:mrn|{tag}-1")) == [f"{tag}-p1"]
    assert ids(find(client, "/Patient", identifier=f"{tag}-2")) == [f"{tag}-p2"]
    assert ids(find(client, "/Patient", identifier=f"|{tag}-2")) == []
    assert sorted(ids(find(client, "/Patient", **tagged(tag, identifier="urn:mrn|")))) == [
        f"{tag}-p1", f"{tag}-p2"]
    assert sorted(ids(find(client, "/Patient", **tagged(tag, **{"gender:not": "female"})))) == [
        f"{tag}-p2", f"{tag}-p3"]
    of_type = "http://terminology.hl7.org/CodeSystem/v2-0203|MR|" + f"{tag}-1"
    assert ids(find(client, "/Patient", **{"identifier:of-type": of_type})) == [f"{tag}-p1"]
    assert sorted(ids(find(client, "/Observation", **tagged(tag, **{"code:text": "body w"})))) == [
        f"{tag}-o1", f"{tag}-o2", f"{tag}-o4"]
    assert ids(find(client, "/Patient", **tagged(tag, active="true"))) == [f"{tag}-p3"]


def test_string_and_accents(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    assert sorted(ids(find(client, "/Patient", **tagged(tag, family="m")))) == [
        f"{tag}-p1", f"{tag}-p2"]
    assert ids(find(client, "/Patient", **tagged(tag, family="mueller"))) == []
    assert ids(find(client, "/Patient", **tagged(tag, family="muller"))) == [f"{tag}-p1"]
    assert ids(find(client, "/Patient", **tagged(tag, given="zoe"))) == [f"{tag}-p1"]
    assert ids(find(client, "/Patient", **tagged(tag, **{"family:exact": "Müller"}))) == [
        f"{tag}-p1"]
    assert ids(find(client, "/Patient", **tagged(tag, **{"family:exact": "müller"}))) == []
    assert ids(find(client, "/Patient", **tagged(tag, **{"family:contains": "ill"}))) == [
        f"{tag}-p2"]
    assert ids(find(client, "/Patient", **tagged(tag, name="adam"))) == [f"{tag}-p2"]


def test_dates(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    assert ids(find(client, "/Patient", **tagged(tag, birthdate="1980"))) == [f"{tag}-p1"]
    assert ids(find(client, "/Patient", **tagged(tag, birthdate="1980-05-17"))) == [f"{tag}-p1"]
    assert ids(find(client, "/Patient", **tagged(tag, birthdate="lt1976"))) == [f"{tag}-p2"]
    assert sorted(ids(find(client, "/Patient", **tagged(tag, birthdate="ge1975-06")))) == [
        f"{tag}-p1", f"{tag}-p2"]
    assert ids(find(client, "/Encounter", **tagged(tag, date="2021-03-01"))) == [f"{tag}-e1"]
    assert sorted(ids(find(client, "/Encounter", **tagged(tag, date="gt2023")))) == [
        f"{tag}-e2"]
    assert sorted(ids(find(client, "/Observation", **tagged(tag, date="2021")))) == [
        f"{tag}-o1", f"{tag}-o3"]
    response = client.get("/Patient", params={"birthdate": "2020-13-45"})
    assert response.status_code == 400
    assert "birthdate" in response.json()["issue"][0]["diagnostics"]


def test_and_by_repeating(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    response = client.get("/Observation", params=[("_tag", f"urn:test|{tag}"),
                                                  ("date", "ge2021-01-01"), ("date", "lt2022")])
    assert sorted(ids(response.json())) == [f"{tag}-o1", f"{tag}-o3"]


def test_quantity_and_number(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    assert ids(find(client, "/Observation",
                    **tagged(tag, **{"value-quantity": "72.5|http://unitsofmeasure.org|kg"}))) == [
        f"{tag}-o1"]
    assert sorted(ids(find(client, "/Observation",
                           **tagged(tag, **{"value-quantity": "gt80||kg"})))) == [
        f"{tag}-o2", f"{tag}-o3"]
    assert ids(find(client, "/Observation", **tagged(tag, **{"value-quantity": "lt60"}))) == [
        f"{tag}-o4"]


def test_reference_forms(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    assert sorted(ids(find(client, "/Observation", subject=f"Patient/{tag}-p1"))) == [
        f"{tag}-o1", f"{tag}-o3"]
    assert sorted(ids(find(client, "/Observation", patient=f"{tag}-p1"))) == [
        f"{tag}-o1", f"{tag}-o3"]
    assert sorted(ids(find(client, "/Observation", **{"subject:Patient": f"{tag}-p1"}))) == [
        f"{tag}-o1", f"{tag}-o3"]
    absolute = f"{client.base_url}Patient/{tag}-p2"
    assert ids(find(client, "/Observation", subject=absolute)) == [f"{tag}-o2"]


def test_chains_and_has(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    chain = {"subject:Patient.family": "muller"}
    assert sorted(ids(find(client, "/Observation", **tagged(tag, **chain)))) == [
        f"{tag}-o1", f"{tag}-o3"]
    two_level = {"encounter.subject:Patient.organization.name": "saint zo"}
    assert sorted(ids(find(client, "/Observation", **tagged(tag, **two_level)))) == [
        f"{tag}-o1", f"{tag}-o3"]
    has = {"_has:Observation:patient:code": "8302-2"}
    assert ids(find(client, "/Patient", **tagged(tag, **has))) == [f"{tag}-p1"]
    nested = {"_has:Encounter:patient:_has:Observation:encounter:code": "29463-7"}
    assert sorted(ids(find(client, "/Patient", **tagged(tag, **nested)))) == [
        f"{tag}-p1", f"{tag}-p2"]
    missing_target = {"subject:Patient.family": "nobody-has-this-name"}
    assert ids(find(client, "/Observation", **missing_target)) == []


def test_missing(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    assert ids(find(client, "/Patient", **tagged(tag, **{"birthdate:missing": "true"}))) == [
        f"{tag}-p3"]
    assert sorted(ids(find(client, "/Patient", **tagged(tag, **{"telecom:missing": "false"})))) \
        == [f"{tag}-p1"]


def test_includes(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    bundle = find(client, "/Observation", **tagged(tag, code="8302-2",
                                                   _include="Observation:subject"))
    assert ids(bundle) == [f"{tag}-o3"]
    assert ids(bundle, "include") == [f"{tag}-p1"]
    rev = find(client, "/Patient", **tagged(tag, gender="male",
                                           _revinclude="Observation:subject"))
    assert ids(rev) == [f"{tag}-p2"]
    assert ids(rev, "include") == [f"{tag}-o2"]
    iterate = client.get("/Observation", params=[
        ("_tag", f"urn:test|{tag}"), ("code", "8302-2"), ("_include", "Observation:subject"),
        ("_include:iterate", "Patient:organization")]).json()
    assert sorted(ids(iterate, "include")) == [f"{tag}-org", f"{tag}-p1"]
    star = find(client, "/Observation", **tagged(tag, code="8302-2", _include="*"))
    assert sorted(ids(star, "include")) == [f"{tag}-e1", f"{tag}-p1"]


def test_sort(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    asc = ids(find(client, "/Patient", **tagged(tag, _sort="birthdate")))
    assert asc == [f"{tag}-p2", f"{tag}-p1", f"{tag}-p3"]
    desc = ids(find(client, "/Patient", **tagged(tag, _sort="-birthdate")))
    assert desc == [f"{tag}-p1", f"{tag}-p2", f"{tag}-p3"]
    two = ids(find(client, "/Observation", **tagged(tag, _sort="code,-date")))
    assert two == [f"{tag}-o4", f"{tag}-o2", f"{tag}-o1", f"{tag}-o3"]
    assert ids(find(client, "/Patient", **tagged(tag, _sort="-_id"))) == [
        f"{tag}-p3", f"{tag}-p2", f"{tag}-p1"]


def test_paging_visits_each_match_once(client: httpx.Client, world: dict[str, str],
                                       tag: str) -> None:
    for sort in (None, "-date", "code,date", "_lastUpdated"):
        params = tagged(tag, _count="1")
        if sort:
            params["_sort"] = sort
        bundle = find(client, "/Observation", **params)
        seen = ids(bundle)
        pages = 1
        while nxt := [link["url"] for link in bundle["link"] if link["relation"] == "next"]:
            bundle = client.get(nxt[0]).json()
            seen += ids(bundle)
            pages += 1
            assert pages < 10
        assert sorted(seen) == [f"{tag}-o{i}" for i in range(1, 5)], sort
        back = [link["url"] for link in bundle["link"] if link["relation"] == "previous"]
        assert back
        previous = client.get(back[0]).json()
        assert len(ids(previous)) == 1
        assert ids(previous)[0] == seen[-2]


def test_total_summary_elements(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    none = find(client, "/Patient", **tagged(tag))
    assert "total" not in none
    assert find(client, "/Patient", **tagged(tag, _total="accurate"))["total"] == 3
    assert isinstance(find(client, "/Patient", **tagged(tag, _total="estimate"))["total"], int)
    count = find(client, "/Patient", **tagged(tag, _summary="count"))
    assert count["total"] == 3 and "entry" not in count
    elements = find(client, "/Patient", **tagged(tag, _elements="gender", _id=f"{tag}-p1"))
    resource = elements["entry"][0]["resource"]
    assert resource["gender"] == "female" and "name" not in resource
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
            "code": "SUBSETTED"} in resource["meta"]["tag"]


def test_unknown_parameters(client: httpx.Client, world: dict[str, str], tag: str) -> None:
    lenient = find(client, "/Patient", **tagged(tag, nonsense="1"))
    assert len(ids(lenient)) == 3
    self_link = lenient["link"][0]["url"]
    assert "nonsense" not in self_link and "_tag" in self_link
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome and "nonsense" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    strict = client.get("/Patient", params={"nonsense": "1"},
                        headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert client.get("/Patient", params={"family:bogus": "x"}).status_code == 400


def test_post_search_system_and_compartment(client: httpx.Client, world: dict[str, str],
                                            tag: str) -> None:
    posted = client.post("/Patient/_search", content=f"_tag=urn:test|{tag}&gender=male",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert posted.status_code == 200
    assert ids(posted.json()) == [f"{tag}-p2"]
    system = find(client, "", _id=f"{tag}-p1,{tag}-e1", _type="Patient,Encounter")
    assert sorted(ids(system)) == [f"{tag}-e1", f"{tag}-p1"]
    compartment = find(client, f"/Patient/{tag}-p1/Observation")
    assert sorted(ids(compartment)) == [f"{tag}-o1", f"{tag}-o3"]
    assert ids(find(client, f"/Patient/{tag}-p1/Encounter")) == [f"{tag}-e1"]


def test_conditional_interactions(client: httpx.Client, tag: str) -> None:
    ident = f"urn:cond|{tag}"
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:cond", "value": tag}]}
    first = client.post("/Patient", content=orjson.dumps(body),
                        headers={**HEADERS, "If-None-Exist": f"identifier={ident}"})
    assert first.status_code == 201
    again = client.post("/Patient", content=orjson.dumps(body),
                        headers={**HEADERS, "If-None-Exist": f"identifier={ident}"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    updated = client.put(f"/Patient?identifier={ident}",
                         content=orjson.dumps({**body, "active": True}), headers=HEADERS)
    assert updated.status_code == 200
    assert updated.json()["id"] == first.json()["id"]
    assert updated.headers["etag"] == 'W/"2"'
    fresh = {"resourceType": "Patient",
             "identifier": [{"system": "urn:cond", "value": f"{tag}-new"}]}
    created = client.put(f"/Patient?identifier=urn:cond|{tag}-new",
                         content=orjson.dumps(fresh), headers=HEADERS)
    assert created.status_code == 201
    both = f"identifier=urn:cond|{tag}"
    client.post("/Patient", content=orjson.dumps(body), headers=HEADERS)
    many = client.post("/Patient", content=orjson.dumps(body),
                       headers={**HEADERS, "If-None-Exist": both})
    assert many.status_code == 412
    assert client.delete(f"/Patient?{both}").status_code == 412
    gone = client.delete(f"/Patient?identifier=urn:cond|{tag}-new")
    assert gone.status_code == 204
    assert client.get(f"/Patient/{created.json()['id']}").status_code == 410
    unknown = client.post("/Patient", content=orjson.dumps(body),
                          headers={**HEADERS, "If-None-Exist": "nonsense=1"})
    assert unknown.status_code == 400
    # Empty values are ignored in searches; criteria left with nothing select nothing in
    # particular and are refused rather than matching every resource.
    for criteria in ("identifier=", "_count=1", "identifier=&_sort=_id"):
        created = client.post("/Patient", content=orjson.dumps({"resourceType": "Patient"}),
                              headers={**HEADERS, "If-None-Exist": criteria})
        assert created.status_code == 400, criteria
        assert client.delete(f"/Patient?{criteria}").status_code == 400, criteria
        assert client.put(f"/Patient?{criteria}", content=orjson.dumps(
            {"resourceType": "Patient"}), headers=HEADERS).status_code == 400, criteria


def test_sort_over_open_periods(client: httpx.Client, tag: str) -> None:
    """Open-ended periods index as +/-infinity; sorting and paging over them works."""
    for n, period in enumerate([{"start": "2020-01-01"}, {"end": "2019-06-01"},
                                {"start": "2021-01-01", "end": "2021-02-01"}]):
        put(client, {"resourceType": "Encounter", "id": f"{tag}-open{n}",
                     "meta": {"tag": [{"system": "urn:open", "code": tag}]},
                     "status": "finished", "class": {"code": "AMB"}, "period": period})
    for sort in ("date", "-date"):
        seen: list[str] = []
        bundle = find(client, "/Encounter", _tag=f"urn:open|{tag}", _sort=sort, _count="1")
        seen += ids(bundle)
        while nxt := [link["url"] for link in bundle["link"] if link["relation"] == "next"]:
            bundle = client.get(nxt[0]).json()
            seen += ids(bundle)
        assert sorted(seen) == [f"{tag}-open0", f"{tag}-open1", f"{tag}-open2"], sort
    assert ids(find(client, "/Encounter", _tag=f"urn:open|{tag}", _sort="date")) == [
        f"{tag}-open1", f"{tag}-open0", f"{tag}-open2"]


def test_empty_parameters_are_ignored_and_count_is_capped(client: httpx.Client,
                                                          world: dict[str, str],
                                                          tag: str) -> None:
    plain = ids(find(client, "/Patient", **tagged(tag)))
    for strict in (False, True):
        headers = {"Prefer": "handling=strict"} if strict else {}
        response = client.get("/Patient", params={**tagged(tag), "_id": "", "gender": "",
                                                  "name:contains": "", "_sort": ""},
                              headers=headers)
        assert response.status_code == 200
        bundle = response.json()
        assert ids(bundle) == plain
        self_link = bundle["link"][0]["url"]
        assert "_id" not in self_link and "gender" not in self_link
        assert "name:contains" not in self_link and "_sort" not in self_link
    capped = find(client, "/Patient", **tagged(tag, _count="5000"))
    assert "_count=1000" in capped["link"][0]["url"]


def test_concurrent_conditional_creates_store_one_resource(client: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ident = f"urn:race|{uuid.uuid4().hex}"
    system, value = ident.split("|")
    body = orjson.dumps({"resourceType": "Patient",
                         "identifier": [{"system": system, "value": value}]})

    def create(_: int) -> int:
        with httpx.Client(base_url=str(client.base_url), timeout=30,
                          headers=client.headers) as own:
            response = own.post("/Patient", content=body, headers={
                **HEADERS, "If-None-Exist": f"identifier={ident}"})
            return response.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(create, range(16)))
    assert statuses == [200] * 15 + [201]
    found = find(client, "/Patient", identifier=ident, _total="accurate")
    assert found["total"] == 1


def test_count_zero_is_summary_count(client: httpx.Client, world: dict[str, str],
                                     tag: str) -> None:
    bundle = find(client, "/Patient", **tagged(tag, _count="0"))
    assert bundle["total"] == 3
    assert "entry" not in bundle
    assert [link["relation"] for link in bundle["link"]] == ["self"]
