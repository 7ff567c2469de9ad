"""The SQL a search runs, and what PostgreSQL says about it (``EXPLAIN ANALYZE``).

The benchmark process builds the server's own search machinery (registry, parser,
compiler) and runs ``fhir_server.service.search.run`` for the same URL over a session
that records every statement it executes: the page, the count (``_total``,
``_summary=count``) and the ``_include``/``_revinclude`` look-ups, with their
parameters, exactly as the server would send them. Each statement is then explained:

- **custom plan**: ``EXPLAIN (ANALYZE, BUFFERS, TIMING OFF)`` of the statement with its
  parameters, several times; the median of planning + execution time is the SQL time.
  One more run with per-node timing gives the plan shown in reports.
- **steady-state plan**: the server's connections are psycopg connections with the
  default ``prepare_threshold`` (5): a statement text run five times on one connection
  becomes a server-side prepared statement, and from its sixth execution PostgreSQL
  may switch to a *generic* plan (one that ignores the parameter values). The statement
  is prepared on a fresh connection, executed seven times, and then explained with
  ``EXPLAIN ANALYZE EXECUTE``: that is the plan a busy server ends up using.
  ``pg_prepared_statements.generic_plans`` says whether it is generic.

``fhir_server`` is imported lazily, so that ``bench/search.py --source`` can put another
source tree first on ``sys.path``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg import sql

#: A statement as the compiler gives it: SQL and its parameters.
Statement = tuple[sql.Composable, list[Any]]


@dataclass
class Explained:
    """One statement of one request, explained."""

    kind: str
    sql: str
    params: list[Any]
    #: planning + execution time (ms) of each custom-plan run, TIMING OFF
    custom_ms: list[float] = field(default_factory=list)
    planning_ms: float = 0.0
    execution_ms: float = 0.0
    rows: int = 0
    plan_text: str = ""
    #: the prepared statement after 7 executions: generic or custom, its time and plan
    steady_generic: bool | None = None
    steady_ms: float | None = None
    steady_plan_text: str = ""

    @property
    def median_ms(self) -> float:
        """Median planning + execution time of the custom plan."""
        return statistics.median(self.custom_ms) if self.custom_ms else 0.0

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form (parameters as text)."""
        return {
            "kind": self.kind, "sql": self.sql, "params": [_plain(p) for p in self.params],
            "custom_ms_median": round(self.median_ms, 3),
            "custom_ms_runs": [round(v, 3) for v in self.custom_ms],
            "planning_ms": round(self.planning_ms, 3),
            "execution_ms": round(self.execution_ms, 3), "rows": self.rows,
            "plan": self.plan_text.splitlines(),
            "steady_generic": self.steady_generic,
            "steady_ms": None if self.steady_ms is None else round(self.steady_ms, 3),
            "steady_plan": self.steady_plan_text.splitlines(),
        }


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def _kind(text: str) -> str:
    """What a statement does, from its shape (see fhir_server.search.statements)."""
    if text.startswith("SELECT count(*)"):
        return "count"
    if text.startswith("EXPLAIN"):
        return "estimate"
    if "FROM idx_reference a JOIN resource r ON r.rid = a.rid" in text:
        return "revinclude"
    if "FROM idx_reference a JOIN resource r" in text:
        return "include"
    return "page"


class Explainer:
    """Compiles URLs with the server's machinery and explains their statements."""

    def __init__(self, db_url: str) -> None:
        # Imported here: see the module docstring.
        from fhir_server.definitions import Definitions
        from fhir_server.paths import data_dir
        from fhir_server.service.context import ServiceContext
        from fhir_server.settings import Settings

        try:
            from fhir_server.runtime import build_search
        except ImportError:  # older trees built it in the app module
            from fhir_server.app import build_search  # type: ignore[attr-defined,no-redef]

        self._db_url = db_url
        settings = Settings()
        profiles = data_dir("profiles")
        definitions = Definitions.load(profiles)
        self._ctx = ServiceContext(
            settings=settings, repository=None,  # type: ignore[arg-type]  # never used
            validator=None,  # type: ignore[arg-type]  # searches do not validate
            resource_types=definitions.resource_types, definitions=definitions,
            search=build_search(settings, definitions, profiles), compartments={})

    async def statements(self, conn: psycopg.AsyncConnection[Any],
                         path: str) -> list[Statement]:
        """The statements the server runs for ``path`` (``/fhir/Type?query``), in order."""
        from fhir_server.service import search as search_service
        from fhir_server.storage.repository import PgSession

        recorded: list[Statement] = []

        class Recording(PgSession):
            async def _fetch(self, statement: Statement) -> list[tuple[Any, ...]]:
                recorded.append(statement)
                rows: list[tuple[Any, ...]] = await super()._fetch(statement)
                return rows

            async def _fetch_within(self, statement: Statement, limit: int,
                                    max_bytes: int | None) -> Any:
                if max_bytes is not None:  # else it goes to _fetch, which records it
                    recorded.append(statement)
                return await super()._fetch_within(statement, limit, max_bytes)

        url = urlsplit(path)
        parts = [p for p in url.path.split("/") if p]
        if len(parts) != 2 or parts[0] != "fhir":
            raise ValueError(f"not a type-level search: {path}")
        pairs = parse_qsl(url.query, keep_blank_values=True)
        ctx = self._ctx
        request = search_service.parse(ctx, [parts[1]], pairs, False)
        await search_service.run(ctx, request, Recording(conn, 0))
        return recorded

    async def explain(self, path: str, runs: int = 5) -> list[Explained]:
        """Every statement of ``path`` explained (custom plan and steady-state plan)."""
        async with await psycopg.AsyncConnection.connect(self._db_url,
                                                         autocommit=True) as conn:
            found = await self.statements(conn, path)
            out = []
            for statement, params in found:
                text = sql.Composed([statement]).as_string(conn)
                item = Explained(_kind(text), text, list(params))
                if item.kind == "estimate":  # EXPLAIN of an EXPLAIN: not meaningful
                    out.append(item)
                    continue
                for _ in range(runs):
                    plan = await _explain_json(conn, statement, params)
                    item.custom_ms.append(plan["Planning Time"] + plan["Execution Time"])
                timed = await _explain_json(conn, statement, params, timing=True)
                item.planning_ms = timed["Planning Time"]
                item.execution_ms = timed["Execution Time"]
                item.rows = int(timed["Plan"]["Actual Rows"])
                item.plan_text = await _explain_text(conn, statement, params)
                await self._steady(statement, params, item)
                out.append(item)
            return out

    async def _steady(self, statement: sql.Composable, params: list[Any],
                      item: Explained) -> None:
        """Prepare on a fresh connection, execute 7 times, explain the 8th execution."""
        async with await psycopg.AsyncConnection.connect(self._db_url,
                                                         autocommit=True) as conn:
            query = sql.Composed([statement])
            for _ in range(7):
                await conn.execute(query, params, prepare=True)
            cur = await conn.execute(
                "SELECT name, parameter_types::text[] FROM pg_prepared_statements")
            rows = await cur.fetchall()
            if len(rows) != 1:
                return
            name, types = rows[0]
            # EXECUTE inside EXPLAIN takes no bound parameters: the values are inlined.
            args = sql.SQL(", ").join(sql.SQL("{}::{}").format(sql.Literal(v), sql.SQL(t))
                                      for v, t in zip(params, types, strict=True))
            execute = sql.SQL("EXECUTE {}({})").format(sql.Identifier(name), args)
            cur = await conn.execute(
                sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}").format(execute))
            row = await cur.fetchone()
            assert row is not None
            plan = row[0][0]
            item.steady_ms = plan["Planning Time"] + plan["Execution Time"]
            cur = await conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) {}").format(execute))
            item.steady_plan_text = "\n".join(r[0] for r in await cur.fetchall())
            cur = await conn.execute(
                "SELECT generic_plans FROM pg_prepared_statements WHERE name = %s", (name,))
            counts = await cur.fetchone()
            item.steady_generic = bool(counts and counts[0])


async def _explain_json(conn: psycopg.AsyncConnection[Any], statement: sql.Composable,
                        params: list[Any], timing: bool = False) -> dict[str, Any]:
    options = "ANALYZE, BUFFERS, FORMAT JSON" + ("" if timing else ", TIMING OFF")
    cur = await conn.execute(
        sql.SQL("EXPLAIN ({}) {}").format(sql.SQL(options), statement), params)
    row = await cur.fetchone()
    assert row is not None
    plan: dict[str, Any] = row[0][0]
    return plan


async def _explain_text(conn: psycopg.AsyncConnection[Any], statement: sql.Composable,
                        params: list[Any]) -> str:
    cur = await conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) {}").format(statement),
                             params)
    return "\n".join(r[0] for r in await cur.fetchall())
