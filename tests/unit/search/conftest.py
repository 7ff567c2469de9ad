"""Session fixtures for the search tests: definitions, extractor and the parameter bundle."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fhir_server.definitions import Definitions
from fhir_server.paths import data_dir
from fhir_server.search.fhirpath import Extractor


@pytest.fixture(scope="session")
def definitions() -> Definitions:
    """The R4 definitions from the shipped profiles folder (loaded once per worker)."""
    return Definitions.load()


@pytest.fixture(scope="session")
def extractor(definitions: Definitions) -> Extractor:
    """One extractor for the whole session."""
    return Extractor(definitions)


@pytest.fixture(scope="session")
def search_parameters() -> list[dict[str, Any]]:
    """The official R4 SearchParameters that have an expression."""
    bundle = orjson.loads((data_dir("search") / "search-parameters.json").read_bytes())
    return [e["resource"] for e in bundle["entry"] if e["resource"].get("expression")]
