"""Load the R4 definitions once per test session (per xdist worker)."""

from __future__ import annotations

import pytest

from fhir_server.definitions import Definitions


@pytest.fixture(scope="session")
def definitions() -> Definitions:
    """The definitions from the shipped profiles folder."""
    return Definitions.load()
