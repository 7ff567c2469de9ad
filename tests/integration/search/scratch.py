"""Scratch PostgreSQL databases for integration tests outside the per-type SQL tests.

The helpers moved to ``tests.integration.storage.sql.scratch`` with the predicate tests
(the SQL of searches is ``fhir_server.storage.sql``); the cache integration tests import
the scratch database and the admin URL from here.
"""

from __future__ import annotations

from tests.integration.storage.sql.scratch import (
    DEFAULT_URL,
    MIGRATIONS,
    admin_url,
    scratch_database,
    scratch_fixture,
    scratch_url,
)

__all__ = ["DEFAULT_URL", "MIGRATIONS", "admin_url", "scratch_database", "scratch_fixture",
           "scratch_url"]
