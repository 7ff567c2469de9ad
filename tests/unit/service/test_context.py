"""Logical ids: FHIR's rule, and no URL dot segment."""

from __future__ import annotations

import pytest

from fhir_server.errors import BadRequest
from fhir_server.service.context import check_id_for_write, valid_id


@pytest.mark.parametrize("value", ["a", "A-1.b", "x" * 64, "...", ".a", "a.", "-"])
def test_valid_ids(value: str) -> None:
    assert valid_id(value)
    check_id_for_write(value)


@pytest.mark.parametrize("value", [".", "..", "", "x" * 65, "a b", "a/b", "a_b", "\u0661",
                                   "a\u00b3", "a\x00", "\uff41", "a\n"])
def test_invalid_ids(value: str) -> None:
    assert not valid_id(value)
    with pytest.raises(BadRequest, match="not a valid id"):
        check_id_for_write(value)
