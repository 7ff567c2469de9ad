"""Run only by ``test_scratch_databases.py`` (the name does not match ``test_*.py``).

Tests that fail while they hold scratch databases: their databases must be dropped all
the same.
"""

from __future__ import annotations

import psycopg

from tests.conftest import scratch_database


def test_fails_holding_the_scratch_url_fixture(scratch_url: str) -> None:
    with psycopg.connect(scratch_url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        raise AssertionError("deliberate failure with an open connection")


def test_fails_inside_scratch_database(database_url: str) -> None:
    with scratch_database(database_url, "probe") as url, psycopg.connect(url) as conn:
        conn.execute("SELECT 1")
        raise AssertionError("deliberate failure inside the block")
