"""The terminology operations over HTTP ($expand, $validate-code, $lookup, $subsumes),
GET and POST, with exact statuses and bodies; and the token modifiers they serve to
search (:in, :not-in, :below, :above)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

HEADERS = {"Content-Type": "application/fhir+json"}
VS = "http://hl7.org/fhir/ValueSet/"
GENDER = "http://hl7.org/fhir/administrative-gender"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def params(**values: Any) -> dict[str, Any]:
    """A Parameters body: value[x] chosen by the Python type (dicts: valueCoding)."""
    parts = []
    for name, value in values.items():
        if isinstance(value, bool):
            parts.append({"name": name, "valueBoolean": value})
        elif isinstance(value, int):
            parts.append({"name": name, "valueInteger": value})
        elif isinstance(value, dict) and value.get("resourceType"):
            parts.append({"name": name, "resource": value})
        elif isinstance(value, dict):
            parts.append({"name": name, "valueCoding": value})
        else:
            parts.append({"name": name, "valueString" if name == "filter" else "valueUri"
                          if name in ("url", "system") else "valueCode": value})
    return {"resourceType": "Parameters", "parameter": parts}


def values(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["resourceType"] == "Parameters"
    return {p["name"]: next((v for k, v in p.items() if k.startswith("value")), None)
            for p in body["parameter"] if "part" not in p}


def issue(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    return str(body["issue"][0]["diagnostics"])


@pytest.mark.requires(operation=("ValueSet", "expand"))
def test_expand_get_and_post(client: httpx.Client) -> None:
    got = client.get("/ValueSet/$expand", params={"url": VS + "administrative-gender"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["resourceType"] == "ValueSet" and body["url"] == VS + "administrative-gender"
    expansion = body["expansion"]
    assert expansion["total"] == 4 and expansion["offset"] == 0
    assert expansion["identifier"].startswith("urn:uuid:") and "timestamp" in expansion
    assert [(c["system"], c["code"], c["display"]) for c in expansion["contains"]] == [
        (GENDER, "male", "Male"), (GENDER, "female", "Female"), (GENDER, "other", "Other"),
        (GENDER, "unknown", "Unknown")]
    posted = client.post("/ValueSet/$expand", headers=HEADERS, json=params(
        url=VS + "administrative-gender", filter="MAL", count=1, offset=1))
    assert posted.status_code == 200, posted.text
    paged = posted.json()["expansion"]
    assert paged["total"] == 2 and paged["offset"] == 1  # male, female
    assert [c["code"] for c in paged["contains"]] == ["female"]
    assert paged["parameter"] == [{"name": "filter", "valueString": "MAL"},
                                  {"name": "count", "valueInteger": 1},
                                  {"name": "offset", "valueInteger": 1}]


@pytest.mark.requires(operation=("ValueSet", "expand"))
def test_expand_flattens_nesting_and_by_id(client: httpx.Client) -> None:
    got = client.get("/ValueSet/condition-clinical/$expand")
    assert got.status_code == 200, got.text
    assert [c["code"] for c in got.json()["expansion"]["contains"]] == [
        "active", "recurrence", "relapse", "inactive", "remission", "resolved"]


@pytest.mark.requires(operation=("ValueSet", "expand"))
def test_expand_a_given_value_set(client: httpx.Client) -> None:
    vs = {"resourceType": "ValueSet", "status": "draft", "url": "urn:test:vs",
          "compose": {"include": [{"system": CLINICAL, "filter": [
              {"property": "concept", "op": "descendent-of", "value": "active"}]}]}}
    answer = client.post("/ValueSet/$expand", headers=HEADERS, json=params(valueSet=vs))
    assert answer.status_code == 200, answer.text
    assert [c["code"] for c in answer.json()["expansion"]["contains"]] == [
        "recurrence", "relapse"]


@pytest.mark.requires(operation=("ValueSet", "expand"))
def test_expand_errors(client: httpx.Client) -> None:
    assert "UCUM" in issue(client.get("/ValueSet/$expand", params={
        "url": VS + "ucum-units"}), 422, "too-costly")
    assert "SNOMED CT" in issue(client.get("/ValueSet/$expand", params={
        "url": VS + "condition-code"}), 422, "not-supported")
    assert "LOINC" in issue(client.get("/ValueSet/$expand", params={
        "url": VS + "observation-codes"}), 422, "not-supported")
    assert "not known" in issue(client.get("/ValueSet/$expand", params={
        "url": "http://example.org/nope"}), 404, "not-found")
    issue(client.get("/ValueSet/$expand"), 400, "invalid")
    issue(client.get("/ValueSet/$expand", params={"url": VS + "administrative-gender",
                                                   "count": "-1"}), 400, "invalid")
    issue(client.get("/ValueSet/$expand", params={"nonsense": "1"}), 400, "invalid")
    issue(client.get(f"/ValueSet/nope-{uuid.uuid4().hex[:8]}/$expand"), 404, "not-found")


@pytest.mark.requires(operation=("ValueSet", "validate-code"))
def test_validate_code(client: httpx.Client) -> None:
    url = VS + "administrative-gender"
    assert values(client.get("/ValueSet/$validate-code", params={
        "url": url, "system": GENDER, "code": "female"})) == {
            "result": True, "display": "Female"}
    no = values(client.get("/ValueSet/$validate-code", params={
        "url": url, "system": GENDER, "code": "woman"}))
    assert no == {"result": False, "message": f"{GENDER}#woman is not in the value set {url}"}
    coding = values(client.post("/ValueSet/$validate-code", headers=HEADERS, json=params(
        url=url, coding={"system": GENDER, "code": "male", "display": "Man"})))
    assert coding["result"] is True and "'Man'" in coding["message"]
    concept = {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": url}, {"name": "codeableConcept", "valueCodeableConcept": {
            "coding": [{"system": "urn:x", "code": "x"}, {"system": GENDER, "code": "other"}]}}]}
    assert values(client.post("/ValueSet/$validate-code", headers=HEADERS,
                              json=concept))["result"] is True
    assert values(client.get("/ValueSet/administrative-gender/$validate-code", params={
        "system": GENDER, "code": "unknown"}))["result"] is True
    issue(client.get("/ValueSet/$validate-code", params={"url": url}), 400, "invalid")


@pytest.mark.requires(operation=("CodeSystem", "lookup"))
def test_lookup(client: httpx.Client) -> None:
    answer = client.get("/CodeSystem/$lookup", params={"system": CLINICAL, "code": "active"})
    found = values(answer)
    assert found["name"] == "Condition Clinical Status Codes" and found["display"] == "Active"
    props = [(p["part"][0]["valueCode"], p["part"][1]) for p in answer.json()["parameter"]
             if p["name"] == "property"]
    assert ("child", {"name": "value", "valueCode": "recurrence"}) in props
    assert ("inactive", {"name": "value", "valueBoolean": False}) in props
    posted = values(client.post("/CodeSystem/$lookup", headers=HEADERS, json=params(
        coding={"system": CLINICAL, "code": "relapse"})))
    assert posted["display"] == "Relapse"
    assert "not in the code system" in issue(client.get("/CodeSystem/$lookup", params={
        "system": CLINICAL, "code": "nope"}), 404, "not-found")
    assert "not known" in issue(client.get("/CodeSystem/$lookup", params={
        "system": "http://snomed.info/sct", "code": "1"}), 404, "not-found")
    issue(client.get("/CodeSystem/$lookup", params={"code": "active"}), 400, "invalid")


@pytest.mark.requires(operation=("CodeSystem", "subsumes"))
@pytest.mark.parametrize(("a", "b", "outcome"), [
    ("active", "relapse", "subsumes"), ("relapse", "active", "subsumed-by"),
    ("active", "active", "equivalent"), ("relapse", "resolved", "not-subsumed")])
def test_subsumes(client: httpx.Client, a: str, b: str, outcome: str) -> None:
    assert values(client.get("/CodeSystem/$subsumes", params={
        "system": CLINICAL, "codeA": a, "codeB": b})) == {"outcome": outcome}
    assert values(client.post("/CodeSystem/$subsumes", headers=HEADERS, json=params(
        codingA={"system": CLINICAL, "code": a},
        codingB={"system": CLINICAL, "code": b}))) == {"outcome": outcome}


@pytest.mark.requires(operation=("CodeSystem", "subsumes"))
def test_subsumes_errors(client: httpx.Client) -> None:
    issue(client.get("/CodeSystem/$subsumes", params={"system": CLINICAL, "codeA": "a"}),
          400, "invalid")
    issue(client.get("/CodeSystem/$subsumes", params={
        "system": CLINICAL, "codeA": "active", "codeB": "zzz"}), 404, "not-found")


def test_definitions_and_capabilities(client: httpx.Client) -> None:
    for op_id, code in (("ValueSet-expand", "expand"),
                        ("ValueSet-validate-code", "validate-code"),
                        ("CodeSystem-lookup", "lookup"), ("CodeSystem-subsumes", "subsumes")):
        answer = client.get(f"/OperationDefinition/{op_id}")
        assert answer.status_code == 200, answer.text
        definition = answer.json()
        assert definition["code"] == code and definition["type"] is True
        assert definition["url"] == f"http://hl7.org/fhir/OperationDefinition/{op_id}"
    statement = client.get("/metadata").json()
    by_type = {r["type"]: {o["name"] for o in r.get("operation", [])}
               for r in statement["rest"][0]["resource"]}
    assert {"expand", "validate-code"} <= by_type["ValueSet"]
    assert {"lookup", "subsumes"} <= by_type["CodeSystem"]


# -- search modifiers -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tagged(client: httpx.Client) -> Iterator[str]:
    """Conditions with clinical statuses and Patients with genders, under one tag."""
    tag = f"t{uuid.uuid4().hex[:10]}"
    meta = {"tag": [{"system": "urn:test", "code": tag}]}
    for status in ("active", "relapse", "resolved"):
        condition = {"resourceType": "Condition", "id": f"{tag}-{status}", "meta": meta,
                     "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
                     "subject": {"reference": f"Patient/{tag}-female"}}
        assert client.put(f"/Condition/{tag}-{status}", json=condition,
                          headers=HEADERS).status_code in (200, 201)
    for gender in ("female", "male"):
        patient = {"resourceType": "Patient", "id": f"{tag}-{gender}", "meta": meta,
                   "gender": gender}
        assert client.put(f"/Patient/{tag}-{gender}", json=patient,
                          headers=HEADERS).status_code in (200, 201)
    yield tag


def found(client: httpx.Client, path: str, tag: str, **query: str) -> list[str]:
    answer = client.get(path, params={"_tag": f"urn:test|{tag}", **query})
    assert answer.status_code == 200, answer.text
    return sorted(e["resource"]["id"].removeprefix(f"{tag}-")
                  for e in answer.json().get("entry", []))


def test_search_in_and_not_in(client: httpx.Client, tagged: str) -> None:
    assert found(client, "/Condition", tagged, **{
        "clinical-status:in": VS + "condition-clinical"}) == ["active", "relapse", "resolved"]
    # gender is a code element (indexed without a system): the value set's codes match it
    assert found(client, "/Patient", tagged, **{
        "gender:in": VS + "administrative-gender"}) == ["female", "male"]
    assert found(client, "/Patient", tagged, **{
        "gender:not-in": VS + "administrative-gender"}) == []
    issue(client.get("/Patient", params={"gender:in": "http://example.org/nope"}),
          400, "invalid")


def test_search_below_and_above(client: httpx.Client, tagged: str) -> None:
    assert found(client, "/Condition", tagged, **{
        "clinical-status:below": f"{CLINICAL}|active"}) == ["active", "relapse"]
    assert found(client, "/Condition", tagged, **{
        "clinical-status:above": f"{CLINICAL}|relapse"}) == ["active", "relapse"]
    refused = issue(client.get("/Condition", params={
        "code:below": "http://snomed.info/sct|404684003"}), 400, "invalid")
    assert "does not hold the hierarchy" in refused
    issue(client.get("/Condition", params={"clinical-status:below": "active"}),
          400, "invalid")


@pytest.mark.requires(operation=("ValueSet", "expand"))
def test_a_stored_value_set_by_id(client: httpx.Client) -> None:
    vs_id = f"vs-{uuid.uuid4().hex[:10]}"
    vs = {"resourceType": "ValueSet", "id": vs_id, "status": "active",
          "url": f"urn:test:{vs_id}", "compose": {"include": [
              {"system": CLINICAL, "concept": [{"code": "relapse"}, {"code": "remission"}]}]}}
    assert client.put(f"/ValueSet/{vs_id}", json=vs, headers=HEADERS).status_code == 201
    answer = client.get(f"/ValueSet/{vs_id}/$expand")
    assert answer.status_code == 200, answer.text
    assert [(c["code"], c["display"]) for c in answer.json()["expansion"]["contains"]] == [
        ("relapse", "Relapse"), ("remission", "Remission")]
    assert values(client.post(f"/ValueSet/{vs_id}/$validate-code", headers=HEADERS,
                              json=params(code="relapse", system=CLINICAL))) == {
        "result": True, "display": "Relapse"}
    issue(client.get(f"/ValueSet/{vs_id}/$expand", params={"url": "urn:x"}), 400, "invalid")
