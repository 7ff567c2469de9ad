"""A migrated scratch PostgreSQL database (``cache_test_*``) per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhir_server.paths import data_dir
from fhir_server.storage.admin import apply_migrations
from tests.integration.search.scratch import admin_url, scratch_url


@pytest.fixture(scope="module")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database with every migration applied, dropped afterwards."""
    with scratch_url(admin_url(request), "cache_test") as url:
        apply_migrations(url, data_dir("migrations"))
        yield url
