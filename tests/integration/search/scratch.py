"""Scratch PostgreSQL databases, and helpers to write index rows and run one predicate.

Shared by the per-type SQL tests of every search parameter type (and, for the admin URL
and the scratch database itself, by the cache integration tests).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from fhir_server.search.base import IndexType, Node, SearchContext
from tests.conftest import scratch_name

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
#: The comparison prefixes of number, date and quantity searches.
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
Truth = TypeVar("Truth")


def admin_url(request: pytest.FixtureRequest) -> str:
    """DATABASE_URL, else the local server if it answers, else the embedded PostgreSQL."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    try:
        with psycopg.connect(DEFAULT_URL, connect_timeout=3):
            return DEFAULT_URL
    except psycopg.OperationalError:
        return str(request.getfixturevalue("database_url"))


@contextlib.contextmanager
def scratch_url(admin: str, prefix: str) -> Iterator[str]:
    """The URL of a fresh, empty database ``<prefix>_*`` on ``admin``'s server.

    The name is unique in the run (``scratch_name``) so that xdist workers and modules
    never meet, and carries the run's token; the database is
    dropped afterwards even if connections to it are still open.
    """
    name = scratch_name(prefix)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(admin, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def scratch_database(request: pytest.FixtureRequest) -> Iterator[psycopg.Connection[Any]]:
    """A connection to a scratch database ``sdn_test_*`` with V1 and V2 applied."""
    with scratch_url(admin_url(request), "sdn_test") as url, \
            psycopg.connect(url, autocommit=True) as conn:
        for script in ("V1__init.sql", "V2__search_index.sql"):  # V2 builds on V1
            conn.execute((MIGRATIONS / script).read_text())
        yield conn


def scratch_fixture() -> Any:
    """A module-scoped fixture over ``scratch_database``; named by the module variable
    it is assigned to (``db = scratch_fixture()``)."""

    @pytest.fixture(scope="module")
    def scratch(request: pytest.FixtureRequest) -> Iterator[psycopg.Connection[Any]]:
        """A scratch database with the resource and index tables (see scratch.py)."""
        yield from scratch_database(request)

    return scratch


def named_rows(kind: IndexType, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Index rows as ``fhir_write_index`` takes them: objects keyed ``p`` and by column."""
    names = ("p", *(c for c, _ in kind.columns))
    return [dict(zip(names, r, strict=True)) for r in rows]


def write_index(conn: psycopg.Connection[Any],
                index_by_rid: dict[int, dict[str, list[dict[str, Any]]]]) -> None:
    """Write each resource's rows (by table name without ``idx_``) via fhir_write_index."""
    with conn.cursor() as cur:
        cur.executemany("SELECT fhir_write_index(%s, %s, true)",
                        [(rid, Jsonb(index)) for rid, index in index_by_rid.items()])


def load_rows(conn: psycopg.Connection[Any], kind: IndexType, p: int, ctx: SearchContext,
              nodes_by_rid: dict[int, list[Node]]) -> None:
    """Write each resource's rows of one parameter through fhir_write_index."""
    short = kind.table.removeprefix("idx_")
    write_index(conn, {rid: {short: named_rows(kind, kind.rows(p, nodes, ctx))}
                       for rid, nodes in nodes_by_rid.items()})


def matching_rids(conn: psycopg.Connection[Any], kind: IndexType, p: int, ctx: SearchContext,
                  values: Sequence[str], modifier: str | None = None) -> set[int]:
    """rids with a row matching the predicate."""
    predicate, params = kind.predicate(p, modifier, values, sql.Identifier("a"), ctx)
    query = sql.SQL("SELECT DISTINCT a.rid FROM {} a WHERE {}").format(
        sql.Identifier(kind.table), predicate)
    return {row[0] for row in conn.execute(query, params)}


@dataclass(frozen=True)
class Param:
    """A test module's parameter key and context, bound into ``load_rows`` and
    ``matching_rids`` (``load, matching = PARAM.load, PARAM.matching``)."""

    p: int
    ctx: SearchContext

    def load(self, conn: psycopg.Connection[Any], kind: IndexType,
             nodes_by_rid: dict[int, list[Node]]) -> None:
        """Write each resource's rows with this parameter key and context."""
        load_rows(conn, kind, self.p, self.ctx, nodes_by_rid)

    def matching(self, conn: psycopg.Connection[Any], kind: IndexType, values: Sequence[str],
                 modifier: str | None = None) -> set[int]:
        """rids with a row matching the predicate."""
        return matching_rids(conn, kind, self.p, self.ctx, values, modifier)

    def loaded_fixture(self, kind: IndexType,
                       dataset: Callable[[], tuple[dict[int, list[Node]], Truth]]) -> Any:
        """A module-scoped fixture over the module's ``db``: ``dataset()``'s nodes written,
        then the connection and the dataset's expectations (``loaded = ...``)."""

        @pytest.fixture(scope="module")
        def loaded(db: psycopg.Connection[Any]) -> tuple[psycopg.Connection[Any], Truth]:
            """The scratch database with the module's random dataset, and its truth."""
            nodes, truth = dataset()
            self.load(db, kind, nodes)
            return db, truth

        return loaded
