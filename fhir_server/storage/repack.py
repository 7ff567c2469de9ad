"""Packing the indexes of tables that a bulk load grew (``fhir-server import``).

Rows inserted in key order fill btree pages; rows inserted in random key order (hashes,
reference targets, ids) split pages in halves, so that after a large import the indexes
are ~70 % full, and GIN indexes (``idx_text``) carry their fast-update pending pages as
well. ``REINDEX TABLE CONCURRENTLY`` rebuilds them packed (btree leaves at the default
fillfactor, 90 %) without blocking reads or writes; it costs about one index build per
table. Not 100 %: a resource's update deletes its index rows and inserts new ones under
the same ``rid``, i.e. between existing keys of every index (the ``rid`` ones too), so
full pages split in halves at the first writes after the import (measured:
bench/README.md, storage size). Only tables that grew by at least ``GROWTH`` since the import
started are rebuilt: for a small import into a large database the rebuild would cost
more than it packs.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql

#: rows at the end / rows at the start of the import from which a table is rebuilt
GROWTH = 1.25

#: the resource tables and the search index tables (``idx_*``)
_ROWS = sql.SQL("SELECT c.relname, greatest(c.reltuples, 0)::bigint FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind = 'r' AND n.nspname = current_schema()"
                " AND (c.relname IN ('resource', 'resource_history')"
                " OR left(c.relname, 4) = 'idx_')")


def row_estimates(conn: psycopg.Connection) -> dict[str, int]:
    """The planner's row estimate of each resource and index table (0 for one never
    analyzed: reltuples -1). Cheap (the catalog only); exact enough for a ratio."""
    rows = conn.execute(_ROWS).fetchall()
    return {str(name): int(n) for name, n in rows}


def grown(before: dict[str, int], after: dict[str, int], growth: float = GROWTH
          ) -> list[str]:
    """The tables whose rows went from ``before`` to at least ``growth`` times as many."""
    return sorted(t for t, n in after.items()
                  if n > 0 and n >= growth * before.get(t, 0))


def reindex(conn: psycopg.Connection, tables: Iterable[str]) -> list[str]:
    """``REINDEX TABLE CONCURRENTLY`` each table (``conn`` in autocommit): the tables
    rebuilt. A failure raises and leaves the old indexes in use (and possibly an
    invalid ``*_ccnew`` copy, to be dropped with ``DROP INDEX``)."""
    done = []
    for table in tables:
        conn.execute(sql.SQL("REINDEX TABLE CONCURRENTLY {}").format(sql.Identifier(table)))
        done.append(table)
    return done
