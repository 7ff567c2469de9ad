"""Which tables ``fhir-server import`` rebuilds: those its rows grew by a quarter."""

from __future__ import annotations

from fhir_server.storage.repack import GROWTH, grown


def test_tables_grown_by_a_quarter_or_more_are_rebuilt() -> None:
    before = {"resource": 1000, "idx_token": 4000, "idx_date": 100, "idx_text": 0}
    after = {"resource": 1250, "idx_token": 4999, "idx_date": 1000, "idx_text": 0,
             "idx_uri": 10}
    # idx_text stayed empty; idx_uri is new (no row estimate before)
    assert grown(before, after) == ["idx_date", "idx_uri", "resource"]


def test_a_fresh_database_is_rebuilt_whole() -> None:
    after = {"resource": 5, "resource_history": 6, "idx_token": 20}
    assert grown({}, after) == sorted(after)
    assert grown({t: 0 for t in after}, after) == sorted(after)


def test_growth_threshold() -> None:
    assert GROWTH == 1.25
    assert grown({"resource": 100}, {"resource": 124}) == []
    assert grown({"resource": 100}, {"resource": 100}, growth=1.0) == ["resource"]
