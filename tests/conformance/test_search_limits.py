"""Searches past their limits answered 400 before any work, and many clauses still right.

SEARCH_MAX_PARAMETERS, SEARCH_MAX_VALUES and SEARCH_MAX_CHAIN_DEPTH keep their defaults
(40, 1000, 3) on the test server; docs/operations.md#limits.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

HEADERS = {"Content-Type": "application/fhir+json"}


def outcome(response: httpx.Response, status: int, code: str) -> str:
    """The diagnostics of the one-issue OperationOutcome ``response`` must be."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    assert (issue["severity"], issue["code"]) == ("error", code)
    return str(issue["diagnostics"])


def query(pairs: list[tuple[str, str]]) -> str:
    return str(httpx.QueryParams(pairs))


@pytest.mark.parametrize(("path", "setting"), [
    ("/Patient?" + "&".join(f"name=n{i}" for i in range(41)), "SEARCH_MAX_PARAMETERS"),
    ("/Patient?" + "&".join(f"name=n{i}" for i in range(1000)), "SEARCH_MAX_PARAMETERS"),
    ("/Patient?" + "&".join(f"name:contains=nam{i}" for i in range(200)),
     "SEARCH_MAX_PARAMETERS"),
    ("/Patient?_sort=" + ",".join(["name"] * 41), "SEARCH_MAX_PARAMETERS"),
    ("/Patient?name=" + ",".join(f"n{i}" for i in range(1001)), "SEARCH_MAX_VALUES"),
    ("/Patient?general-practitioner.organization.partof.partof.name=x",
     "SEARCH_MAX_CHAIN_DEPTH"),
    ("/Patient?organization" + ".partof" * 1000 + ".name=x", "SEARCH_MAX_CHAIN_DEPTH"),
    ("/Patient?" + "_has:Patient:link:" * 500 + "name=x", "SEARCH_MAX_CHAIN_DEPTH"),
    ("/Observation?" + "&".join(f"code=c{i}" for i in range(41)), "SEARCH_MAX_PARAMETERS"),
    ("/?_type=Patient&" + "&".join(f"_id=i{i}" for i in range(41)),
     "SEARCH_MAX_PARAMETERS"),
    ("/Patient/x/Observation?" + "&".join(f"code=c{i}" for i in range(41)),
     "SEARCH_MAX_PARAMETERS"),
])
def test_past_a_limit_is_too_costly(client: httpx.Client, path: str, setting: str) -> None:
    started = time.monotonic()
    diagnostics = outcome(client.get(path), 400, "too-costly")
    assert setting in diagnostics
    assert time.monotonic() - started < 2  # refused before any SQL, not by the timeout


def test_contains_needs_three_letters(client: httpx.Client) -> None:
    diagnostics = outcome(client.get("/Patient", params={"name:contains": "ab"}), 400,
                          "too-costly")
    assert ":contains" in diagnostics
    assert client.get("/Patient", params={"name:contains": "abc"}).status_code == 200


@pytest.mark.parametrize(("path", "pairs"), [
    ("/Patient", [("name", "a\x00b")]),                                    # string
    ("/Patient", [("identifier", "urn:x|a\x00")]),                        # token
    ("/ValueSet", [("url", "http://x/\x00")]),                             # uri
    ("/Patient", [("general-practitioner", "Practitioner/a\x00")]),        # reference
    ("/Observation", [("value-quantity", "5|http://unitsofmeasure.org|m\x00g")]),
    ("/Patient", [("general-practitioner.name", "a\x00")]),
])
def test_nul_in_a_value_is_invalid(client: httpx.Client, path: str,
                                   pairs: list[tuple[str, str]]) -> None:
    diagnostics = outcome(client.get(f"{path}?{query(pairs)}"), 400, "invalid")
    assert "NUL" in diagnostics


@pytest.mark.http_only  # a form body and a header
def test_limits_and_nul_in_forms_and_conditions(client: httpx.Client) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/Patient/_search", headers=form,
                           content=query([("name", f"n{i}") for i in range(41)]))
    assert "SEARCH_MAX_PARAMETERS" in outcome(response, 400, "too-costly")
    marker = f"nul-{uuid.uuid4().hex[:10]}"
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:t", "value": marker}]}
    response = client.post("/Patient", content=orjson.dumps(patient),
                           headers={**HEADERS, "If-None-Exist": "name=a%00b"})
    assert "NUL" in outcome(response, 400, "invalid")
    found = client.get("/Patient", params={"identifier": f"urn:t|{marker}"}).json()
    assert "entry" not in found  # nothing refused is stored


def put(client: httpx.Client, resource: dict[str, Any]) -> None:
    response = client.put(f"/{resource['resourceType']}/{resource['id']}",
                          content=orjson.dumps(resource), headers=HEADERS)
    assert response.status_code in (200, 201), response.text


def test_many_anded_clauses_find_what_each_finds(client: httpx.Client) -> None:
    tag = f"t{uuid.uuid4().hex[:10]}"
    meta = {"tag": [{"system": "urn:limits", "code": tag}]}
    put(client, {"resourceType": "Patient", "id": f"{tag}-a", "meta": meta,
                 "name": [{"family": "Quiñones", "given": ["Ana", "Lucía"]}],
                 "gender": "female", "birthDate": "1990-02-03", "active": True,
                 "address": [{"city": "Sevilla"}]})
    put(client, {"resourceType": "Patient", "id": f"{tag}-b", "meta": meta,
                 "name": [{"family": "Quiñones", "given": ["Ana"]}],
                 "gender": "female", "birthDate": "1990-02-03", "active": True,
                 "address": [{"city": "Cádiz"}]})
    base = [("_tag", f"urn:limits|{tag}"), ("family", "quinones"), ("gender", "female"),
            ("birthdate", "1990"), ("active", "true"), ("name", "ana"), ("given", "ana")]

    def found(extra: list[tuple[str, str]]) -> list[str]:
        response = client.get(f"/Patient?{query(base + extra)}")
        assert response.status_code == 200, response.text
        return sorted(e["resource"]["id"] for e in response.json().get("entry", []))

    assert found([]) == [f"{tag}-a", f"{tag}-b"]
    assert found([("name", "lucia")]) == [f"{tag}-a"]          # another row of the same
    assert found([("name", "lucia"), ("address-city", "cadiz")]) == []
    assert found([("address-city", "cadiz"), ("gender:not", "male"),
                  ("gender:not", "other")]) == [f"{tag}-b"]
    assert found([("name:contains", "uci"), ("name:contains", "non")]) == [f"{tag}-a"]
    assert found([("name", "bob")]) == []
