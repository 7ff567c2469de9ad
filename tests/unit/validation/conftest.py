"""Build the validators once per test session (per xdist worker)."""

from __future__ import annotations

import pytest

from fhir_server.validation import Validator


@pytest.fixture(scope="session")
def validator() -> Validator:
    """The default validator (tolerating the known defects of the published examples)."""
    return Validator.load()


@pytest.fixture(scope="session")
def strict_validator(validator: Validator) -> Validator:
    """A validator without tolerances, sharing the default one's definitions."""
    return Validator.load(definitions=validator.definitions, strict=True)
