"""The cached piecewise indexer gives the general indexer's rows (as sets)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.audit.builder import Facts, Target, build
from fhir_server.audit.index import EventIndexer
from fhir_server.definitions import Definitions
from fhir_server.paths import data_dir
from fhir_server.runtime import build_search
from fhir_server.search.index import IndexBuilder
from fhir_server.service.access import Caller
from fhir_server.service.context import SearchServices
from fhir_server.settings import load_settings


@pytest.fixture(scope="module")
def search() -> SearchServices:
    settings = load_settings(env={}, env_file=None)
    profiles = data_dir("profiles")
    return build_search(settings, Definitions.load(profiles), profiles)


@pytest.fixture(scope="module")
def indexer(search: SearchServices) -> IndexBuilder:
    return search.indexer


def _rows(rows: dict[str, list[dict[str, Any]]]) -> set[tuple[Any, ...]]:
    return {(kind, *row.values()) for kind, found in rows.items() if kind != "text"
            for row in found}


def _words(rows: dict[str, list[dict[str, Any]]]) -> set[str]:
    return set(rows["text"][0]["content_source"].split("\n"))


EVENTS = [
    Facts("read", 200, "rq-1", "http://s/fhir", targets=[Target("Observation", "o", 2)],
          caller=Caller("app", user="u", fhir_user="Practitioner/1", patient="p"),
          patients=["p"], address="10.1.1.1"),
    Facts("search-type", 200, "rq-2", "http://s/fhir", targets=[Target("Observation")],
          query="code=1&patient=p", patients=["p", "q"]),
    Facts("delete", 403, "rq-3", "http://s/fhir", targets=[Target("Patient", "x")],
          outcome_desc="outside the scope", address="10.0.0.1"),
    Facts("operation", 202, "rq-4", "http://s/fhir", operation="$reindex"),
]


@pytest.mark.parametrize("facts", EVENTS, ids=lambda f: f.interaction)
@pytest.mark.parametrize("subset", [False, True], ids=["all-params", "varying-params"])
def test_same_rows_as_the_general_indexer(search: SearchServices, facts: Facts,
                                          subset: bool) -> None:
    indexer = search.indexer
    fast = (EventIndexer(indexer, search.registry) if subset else EventIndexer(indexer))
    event = build(facts, "id-1")
    expected = indexer.rows(event)
    for _ in range(2):  # the second time from the cache
        got = fast.rows(event)
        assert _rows(got) == _rows(expected)
        assert _words(got) == _words(expected)


def test_varying_parts_are_not_cached(indexer: IndexBuilder) -> None:
    fast = EventIndexer(indexer)
    one = fast.rows(build(EVENTS[0], "a"))
    other = build(Facts("read", 200, "rq-9", "http://s/fhir",
                        targets=[Target("Observation", "z", 1)]), "b")
    assert _rows(fast.rows(other)) == _rows(indexer.rows(other))
    assert _rows(one) != _rows(fast.rows(other))
