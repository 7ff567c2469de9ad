"""A scratch database with the index tables, and helpers to write rows and run one
predicate, shared by the per-type SQL tests of string, date, number and quantity."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from fhir_server.search.base import IndexType, Node, SearchContext

ADMIN_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


def scratch_database() -> Iterator[psycopg.Connection[Any]]:
    """A scratch database ``sdn_test_*`` with V1 and V2 applied; dropped afterwards."""
    name = f"sdn_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at DATABASE_URL: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(psycopg.conninfo.make_conninfo(ADMIN_URL, dbname=name),
                             autocommit=True) as conn:
            for script in ("V1__init.sql", "V2__search_index.sql"):
                conn.execute((MIGRATIONS / script).read_text())
            yield conn
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def load_rows(conn: psycopg.Connection[Any], kind: IndexType, p: int, ctx: SearchContext,
              nodes_by_rid: dict[int, list[Node]]) -> None:
    """Write each resource's rows through fhir_write_index, as JSON objects."""
    names = ("p", *(c for c, _ in kind.columns))
    short = kind.table.removeprefix("idx_")
    batch = []
    for rid, nodes in nodes_by_rid.items():
        rows = [dict(zip(names, r, strict=True)) for r in kind.rows(p, nodes, ctx)]
        batch.append((rid, json.dumps({short: rows})))
    with conn.cursor() as cur:
        cur.executemany("SELECT fhir_write_index(%s, %s::jsonb, true)", batch)


def matching_rids(conn: psycopg.Connection[Any], kind: IndexType, p: int, ctx: SearchContext,
                  values: Sequence[str], modifier: str | None = None) -> set[int]:
    """rids with a row matching the predicate."""
    alias = sql.Identifier("a")
    predicate, params = kind.predicate(p, modifier, values, alias, ctx)
    query = sql.SQL("SELECT DISTINCT a.rid FROM {} a WHERE {}").format(
        sql.Identifier(kind.table), predicate)
    return {row[0] for row in conn.execute(query, params)}
