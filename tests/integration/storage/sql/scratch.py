"""Scratch PostgreSQL databases, and helpers to write index rows and run one predicate.

Shared by the per-type SQL tests (``tests/integration/storage/sql``): rows come from a
search type's ``rows`` (``fhir_server.search``) and are written through
``fhir_write_index`` as the server does; a search runs each raw value through the search
type's ``parse`` and hands the typed values to the SQL type's ``predicate``
(``fhir_server.storage.sql``), as the compiler does. The scratch database itself (and
the admin URL) is also used by the cache integration tests, through
``tests.integration.search.scratch``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from fhir_server.search.base import IndexContext, Node, ParamType, ParseContext
from fhir_server.storage.sql.kinds import SQL_TYPES, SqlType
from tests.conftest import scratch_name

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MIGRATIONS = Path(__file__).resolve().parents[4] / "migrations"
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


def sql_type(kind: ParamType) -> SqlType:
    """The SQL side (table, predicate) of a search parameter type."""
    return SQL_TYPES[kind.name]


def named_rows(kind: ParamType, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Index rows as ``fhir_write_index`` takes them: objects keyed ``p`` and by column."""
    names = ("p", *(c for c, _ in kind.columns))
    return [dict(zip(names, r, strict=True)) for r in rows]


def write_index(conn: psycopg.Connection[Any],
                index_by_rid: dict[int, dict[str, list[dict[str, Any]]]]) -> None:
    """Write each resource's rows (by table name without ``idx_``) via fhir_write_index."""
    with conn.cursor() as cur:
        cur.executemany("SELECT fhir_write_index(%s, %s, true)",
                        [(rid, Jsonb(index)) for rid, index in index_by_rid.items()])


def load_rows(conn: psycopg.Connection[Any], kind: ParamType, p: int, ctx: IndexContext,
              nodes_by_rid: dict[int, list[Node]]) -> None:
    """Write each resource's rows of one parameter through fhir_write_index."""
    short = sql_type(kind).table.removeprefix("idx_")
    write_index(conn, {rid: {short: named_rows(kind, kind.rows(p, nodes, ctx))}
                       for rid, nodes in nodes_by_rid.items()})


def parse_values(kind: ParamType, p: int, ctx: ParseContext, values: Sequence[str],
                 modifier: str | None = None) -> list[Any]:
    """Each raw value of an OR list parsed by the search type (BadRequest if malformed)."""
    return [kind.parse(p, modifier, value, ctx) for value in values]


def predicate(kind: ParamType, p: int, ctx: ParseContext, values: Sequence[str],
              modifier: str | None = None, alias: str = "a") -> tuple[sql.Composable, list[Any]]:
    """The SQL type's condition on one row ``alias`` for the parsed raw ``values``."""
    typed = parse_values(kind, p, ctx, values, modifier)
    return sql_type(kind).predicate(p, modifier, typed, sql.Identifier(alias))


def matching_rids(conn: psycopg.Connection[Any], kind: ParamType, p: int, ctx: ParseContext,
                  values: Sequence[str], modifier: str | None = None) -> set[int]:
    """rids with a row matching the predicate."""
    condition, params = predicate(kind, p, ctx, values, modifier)
    query = sql.SQL("SELECT DISTINCT a.rid FROM {} a WHERE {}").format(
        sql.Identifier(sql_type(kind).table), condition)
    return {row[0] for row in conn.execute(query, params)}


@dataclass(frozen=True)
class Param:
    """A test module's parameter key and parse context, bound into ``load_rows`` and
    ``matching_rids`` (``load, matching = PARAM.load, PARAM.matching``); rows are indexed
    with the same base URLs the values are parsed with."""

    p: int
    ctx: ParseContext = field(default_factory=ParseContext)

    @property
    def index_context(self) -> IndexContext:
        """The context rows are written with: the parse context's bases."""
        return IndexContext(bases=self.ctx.bases)

    def load(self, conn: psycopg.Connection[Any], kind: ParamType,
             nodes_by_rid: dict[int, list[Node]]) -> None:
        """Write each resource's rows with this parameter key and context."""
        load_rows(conn, kind, self.p, self.index_context, nodes_by_rid)

    def matching(self, conn: psycopg.Connection[Any], kind: ParamType, values: Sequence[str],
                 modifier: str | None = None) -> set[int]:
        """rids with a row matching the predicate."""
        return matching_rids(conn, kind, self.p, self.ctx, values, modifier)

    def loaded_fixture(self, kind: ParamType,
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
