"""Patient/[id]/$everything on the wire: the record, its bounds, its paging."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.requires(operation=("Patient", "everything"))

US_CORE = Path(__file__).parents[1] / "data" / "us-core-bundles" / "uscore_bundle_patient_85.json"


def _create(client: httpx.Client, resource: dict[str, Any]) -> str:
    answer = client.post(f"/{resource['resourceType']}", json=resource)
    assert answer.status_code == 201, answer.text
    return f"{resource['resourceType']}/{answer.json()['id']}"


def _ref(key: str) -> dict[str, str]:
    return {"reference": key}


@pytest.fixture
def record(client: httpx.Client) -> dict[str, str]:
    """A patient with a dated Encounter (2020) and Observation (2021), an undated
    Condition, their Practitioner and Organization, and another patient's data."""
    tag = uuid.uuid4().hex[:10]
    out = {"doctor": _create(client, {"resourceType": "Practitioner",
                                      "name": [{"family": f"Dr{tag}"}]}),
           "org": _create(client, {"resourceType": "Organization", "name": f"H{tag}"}),
           "patient": _create(client, {"resourceType": "Patient",
                                       "name": [{"family": f"P{tag}"}]}),
           "other": _create(client, {"resourceType": "Patient",
                                     "name": [{"family": f"Q{tag}"}]})}
    out["encounter"] = _create(client, {
        "resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                  "code": "AMB"},
        "subject": _ref(out["patient"]), "period": {"start": "2020-03-01",
                                                    "end": "2020-03-02"},
        "participant": [{"individual": _ref(out["doctor"])}],
        "serviceProvider": _ref(out["org"])})
    out["observation"] = _create(client, {
        "resourceType": "Observation", "status": "final", "code": {"text": "weight"},
        "subject": _ref(out["patient"]), "effectiveDateTime": "2021-06-01",
        "performer": [_ref(out["doctor"])], "encounter": _ref(out["encounter"])})
    out["condition"] = _create(client, {
        "resourceType": "Condition", "subject": _ref(out["patient"]),
        "code": {"text": "asthma"}})
    out["foreign"] = _create(client, {
        "resourceType": "Observation", "status": "final", "code": {"text": "bp"},
        "subject": _ref(out["other"]), "hasMember": [_ref(out["observation"])]})
    return out


def _walk(client: httpx.Client, url: str, **params: Any) -> tuple[list[str], list[str]]:
    """(matches, includes) over every page, following next links."""
    matches: list[str] = []
    includes: list[str] = []
    answer = client.get(url, params=params)
    while True:
        assert answer.status_code == 200, answer.text
        bundle = answer.json()
        assert bundle["type"] == "searchset"
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            key = f"{resource['resourceType']}/{resource.get('id')}"
            {"match": matches, "include": includes}.get(entry["search"]["mode"], []).append(key)
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            return matches, includes
        answer = client.get(following[0])


def test_the_record_and_what_it_refers_to(client: httpx.Client,
                                          record: dict[str, str]) -> None:
    matches, includes = _walk(client, f"/{record['patient']}/$everything")
    assert sorted(matches) == sorted(record[k] for k in ("patient", "encounter",
                                                          "observation", "condition"))
    assert set(includes) == {record["doctor"], record["org"]}
    assert record["foreign"] not in matches + includes  # another patient's data


def test_start_and_end_bound_the_care_dates(client: httpx.Client,
                                            record: dict[str, str]) -> None:
    later, _ = _walk(client, f"/{record['patient']}/$everything", start="2021-01-01")
    assert sorted(later) == sorted(record[k] for k in ("patient", "observation",
                                                        "condition"))
    earlier, _ = _walk(client, f"/{record['patient']}/$everything", end="2020-12-31")
    assert sorted(earlier) == sorted(record[k] for k in ("patient", "encounter",
                                                          "condition"))


def test_type_and_since(client: httpx.Client, record: dict[str, str]) -> None:
    typed, includes = _walk(client, f"/{record['patient']}/$everything",
                            _type="Observation,Practitioner")
    assert typed == [record["observation"]]
    assert includes == [record["doctor"]]
    future, includes = _walk(client, f"/{record['patient']}/$everything",
                             _since="2999-01-01T00:00:00Z")
    assert (future, includes) == ([], [])


def test_pages_hold_count_matches_and_cover_the_record_once(
        client: httpx.Client, record: dict[str, str]) -> None:
    first = client.get(f"/{record['patient']}/$everything", params={"_count": "1"})
    assert first.status_code == 200
    bundle = first.json()
    assert [e["search"]["mode"] for e in bundle["entry"]] == ["match"]
    assert bundle["link"][0] == {
        "relation": "self",
        "url": f"{str(client.base_url).rstrip('/')}/{record['patient']}/$everything?_count=1"}
    matches, _ = _walk(client, f"/{record['patient']}/$everything", _count="1")
    assert len(matches) == len(set(matches)) == 4


@pytest.mark.http_only
def test_post_takes_a_parameters_body(client: httpx.Client, record: dict[str, str]) -> None:
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDate": "2021-01-01"},
        {"name": "_type", "valueCode": "Observation"}]}
    answer = client.post(f"/{record['patient']}/$everything", json=body)
    assert answer.status_code == 200, answer.text
    kinds = [(e["resource"]["resourceType"], e["search"]["mode"])
             for e in answer.json()["entry"]]
    assert kinds == [("Observation", "match")]
    wrong = client.post(f"/{record['patient']}/$everything",
                        json={"resourceType": "Parameters",
                              "parameter": [{"name": "colour", "valueCode": "red"}]})
    assert wrong.status_code == 400
    assert wrong.json()["issue"][0]["diagnostics"] == "$everything has no parameter 'colour'"


@pytest.mark.parametrize(("path", "params", "status", "diagnostics"), [
    ("Patient/no-such-patient/$everything", {}, 404, "Patient/no-such-patient is not known"),
    ("Patient/{p}/$everything", {"start": "yesterday"}, 400, None),
    ("Patient/{p}/$everything", {"_type": "Nonsense"}, 404,
     "unknown resource type 'Nonsense'"),
    ("Patient/{p}/$everything", {"_cursor": "9~"}, 400,
     "_cursor is not one of this $everything's pages"),
    ("Patient/{p}/$nothing", {}, 404,
     "the operation $nothing is not supported on Patient/{p}"),
    ("Observation/{p}/$everything", {}, 404,
     "the operation $everything is not supported on Observation/{p}"),
])
def test_refusals(client: httpx.Client, record: dict[str, str], path: str,
                  params: dict[str, str], status: int, diagnostics: str | None) -> None:
    pid = record["patient"].split("/")[1]
    answer = client.get("/" + path.format(p=pid), params=params)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    if diagnostics is not None:
        assert body["issue"][0]["diagnostics"].endswith(diagnostics.format(p=pid))


@pytest.mark.http_only
def test_a_wrong_method_is_405_with_allow(client: httpx.Client,
                                          record: dict[str, str]) -> None:
    answer = client.delete(f"/{record['patient']}/$everything")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD, POST"


@pytest.mark.http_only
def test_the_capability_statement_offers_it_on_patient_only(client: httpx.Client) -> None:
    rest = client.get("/metadata").json()["rest"][0]
    by_type = {r["type"]: [o["name"] for o in r.get("operation", [])]
               for r in rest["resource"]}
    assert "everything" in by_type["Patient"]
    assert "everything" not in by_type["Observation"]


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


@pytest.mark.http_only
def test_a_us_core_patient_equals_its_compartment_computed_here(
        client: httpx.Client) -> None:
    """Every resource of the bundle that refers to the patient comes as a match, every
    resource outside the compartment those refer to as an include."""
    pid = f"uscore-{uuid.uuid4().hex[:12]}"
    text = US_CORE.read_text().replace('"Patient/85"', f'"Patient/{pid}"')
    bundle = json.loads(text)
    bundle["entry"][0]["resource"]["id"] = pid
    answer = client.post("", json=bundle)
    assert answer.status_code == 200, answer.text[:500]
    located: dict[str, str] = {}
    by_key: dict[str, dict[str, Any]] = {}
    for entry, response in zip(bundle["entry"], answer.json()["entry"], strict=True):
        key = "/".join(response["response"]["location"].split("/")[:2])
        located[entry["fullUrl"]] = key
        by_key[key] = entry["resource"]
    patient_urls = {f"Patient/{pid}"} | {u for u, k in located.items()
                                         if k == f"Patient/{pid}"}
    members = {k for k, r in by_key.items()
               if k == f"Patient/{pid}" or patient_urls & set(_references(r))}
    referenced = {located.get(ref, ref) for k in members for ref in _references(by_key[k])}
    matches, includes = _walk(client, f"/Patient/{pid}/$everything", _count="100")
    assert sorted(matches) == sorted(members)
    member_types = {k.split("/")[0] for k in members}
    assert set(includes) == {k for k in referenced if k in by_key
                             and k.split("/")[0] not in member_types | {"Patient"}}


@pytest.fixture(scope="module")
def crowded(client: httpx.Client) -> str:
    """A patient that 1,003 Observations refer to."""
    patient = _create(client, {"resourceType": "Patient"})
    entries = [{"request": {"method": "POST", "url": "Observation"},
                "resource": {"resourceType": "Observation", "status": "final",
                             "code": {"text": "n"}, "subject": _ref(patient)}}
               for _ in range(1003)]
    loaded = client.post("", json={"resourceType": "Bundle", "type": "transaction",
                                   "entry": entries})
    assert loaded.status_code == 200
    return patient.split("/")[1]


@pytest.mark.http_only
@pytest.mark.parametrize("revinclude", ["*", "Observation:subject", "Observation:patient"])
def test_a_cut_revinclude_always_says_so(client: httpx.Client, crowded: str,
                                         revinclude: str) -> None:
    """MAX_INCLUDES (1000) cuts what _revinclude adds, with a warning, whichever
    parameters the search has."""
    answer = client.get("/Patient", params={"_id": crowded, "_revinclude": revinclude})
    assert answer.status_code == 200
    modes = [e["search"]["mode"] for e in answer.json()["entry"]]
    assert modes.count("include") == 1000
    outcome = answer.json()["entry"][-1]
    assert outcome["search"]["mode"] == "outcome"
    assert outcome["resource"]["issue"][0]["diagnostics"] == (
        "included resources were limited to 1000 (MAX_INCLUDES); narrow the search or "
        "page it")
