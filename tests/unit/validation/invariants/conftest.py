"""The invariant evaluator of the session's validator (built once per xdist worker)."""

from __future__ import annotations

import pytest

from fhir_server.validation import Validator
from fhir_server.validation.invariants import Invariants


@pytest.fixture(scope="session")
def invariants(validator: Validator) -> Invariants:
    assert validator.invariants is not None
    return validator.invariants
