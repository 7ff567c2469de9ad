"""A migrated scratch PostgreSQL database (``cache_test_*``) per test module."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from fhir_server.paths import data_dir
from fhir_server.storage.admin import apply_migrations

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_url(request: pytest.FixtureRequest) -> str:
    """DATABASE_URL, else the local server if it answers, else the embedded PostgreSQL."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    try:
        with psycopg.connect(DEFAULT_URL, connect_timeout=3):
            return DEFAULT_URL
    except psycopg.OperationalError:
        return str(request.getfixturevalue("database_url"))


@pytest.fixture(scope="module")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database with every migration applied, dropped afterwards."""
    admin = _admin_url(request)
    name = f"cache_test_{uuid.uuid4().hex[:12]}"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = psycopg.conninfo.make_conninfo(admin, dbname=name)
        apply_migrations(url, data_dir("migrations"))
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(drop)
