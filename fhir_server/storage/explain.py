"""``_explain``: the statements of a search with PostgreSQL's plans of them.

An :class:`ExplainingSession` is a :class:`PgSession` on a connection inside a READ
ONLY transaction that is always rolled back (``explaining`` below): each statement a
search runs (the page, a count or estimate, every include level) is first run under
``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` with the same parameters, plan settings and
time limit, then as usual, so the later statements (includes) get the rows they need.
Nothing can be changed from inside, whatever the statement: the transaction is read only.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
import psycopg
from psycopg import sql

from fhir_server.search.registry import SearchParam
from fhir_server.search.request import SearchRequest
from fhir_server.service.access import AccessScope
from fhir_server.service.repository import QueryPlan, SearchPage, SearchRow
from fhir_server.storage.errors import translated
from fhir_server.storage.fetch import Fetched
from fhir_server.storage.pool import FhirPool
from fhir_server.storage.session import PgSession
from fhir_server.storage.sql.common import Fragment

_EXPLAIN = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ")
#: the same settings as a search's own statement (``PgSession._fetch``)
_SETTINGS = sql.SQL(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
    " set_config('statement_timeout', coalesce(%s, current_setting('statement_timeout')),"
    " true)")
#: psycopg's client-side placeholders (and the escaped percent sign)
_PLACEHOLDER = re.compile(r"%%|%[sbt]")


def _numbered(query: str) -> str:
    """``query`` with PostgreSQL's ``$n`` placeholders, as the server receives it."""
    numbers = itertools.count(1)
    return _PLACEHOLDER.sub(lambda m: "%" if m[0] == "%%" else f"${next(numbers)}", query)


def _json_value(value: Any) -> Any:
    """A parameter JSON cannot carry as it is (bytes, Decimal, a date): its text."""
    return value.hex() if isinstance(value, bytes | bytearray) else str(value)


class _Recorder:
    """The EXPLAIN of one statement into ``plans``."""

    def __init__(self, conn: psycopg.AsyncConnection, timeout: str | None) -> None:
        self.plans: list[QueryPlan] = []
        self.purpose = "search"
        self._conn = conn
        self._timeout = timeout

    async def explain(self, statement: Fragment) -> None:
        conn = self._conn
        with translated():
            await conn.execute(_SETTINGS, (self._timeout,), prepare=False)
            cur = await conn.execute(sql.Composed([_EXPLAIN, statement[0]]), statement[1],
                                     prepare=False)
            row = await cur.fetchone()
        assert row is not None  # EXPLAIN answers one row
        plan = row[0]
        plan = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
        top = plan[0] if isinstance(plan, list) and plan else {}
        self.plans.append(QueryPlan(
            purpose=self.purpose,
            sql=_numbered(sql.Composed([statement[0]]).as_string(conn)),
            parameters=orjson.dumps(list(statement[1]), default=_json_value).decode(),
            plan=orjson.dumps(plan).decode(),
            planning_ms=top.get("Planning Time"),
            execution_ms=top.get("Execution Time")))


class ExplainingSession(PgSession):
    """The session of one ``_explain``: its ``plans``, in the order they ran."""

    def __init__(self, conn: psycopg.AsyncConnection, search_timeout_ms: int,
                 scope: AccessScope | None) -> None:
        super().__init__(conn, search_timeout_ms, scope)
        self._recorder = _Recorder(conn, self._search_timeout)
        self.plans = self._recorder.plans

    async def _fetch(self, statement: Fragment) -> list[tuple[Any, ...]]:
        await self._recorder.explain(statement)
        return await super()._fetch(statement)

    async def _fetch_within(self, statement: Fragment, limit: int,
                            max_bytes: int | None) -> Fetched:
        if max_bytes is not None:  # else it goes to _fetch, which explains it
            await self._recorder.explain(statement)
        return await super()._fetch_within(statement, limit, max_bytes)

    async def search(self, request: SearchRequest, count: int,
                     max_bytes: int | None = None) -> SearchPage:
        """A page of matches; its statement explained as ``search``."""
        self._recorder.purpose = "search"
        return await super().search(request, count, max_bytes)

    async def count(self, request: SearchRequest) -> int:
        """The number of matches; its statement explained as ``count``."""
        self._recorder.purpose = "count"
        return await super().count(request)

    async def estimate(self, request: SearchRequest) -> int:
        """The planner's estimate; its statement explained as ``estimate``."""
        self._recorder.purpose = "estimate"
        return await super().estimate(request)

    async def include(self, sources: Sequence[SearchRow], params: Sequence[SearchParam],
                      target_type: str | None, limit: int,
                      max_bytes: int | None = None) -> list[SearchRow]:
        """``_include`` targets; the statement explained as ``include``."""
        self._recorder.purpose = "include"
        return await super().include(sources, params, target_type, limit, max_bytes)

    async def revinclude(self, targets: Sequence[SearchRow], params: Sequence[SearchParam],
                         limit: int, max_bytes: int | None = None) -> list[SearchRow]:
        """``_revinclude`` sources; the statement explained as ``revinclude``."""
        self._recorder.purpose = "revinclude"
        return await super().revinclude(targets, params, limit, max_bytes)


@asynccontextmanager
async def explaining(pool: FhirPool, search_timeout_ms: int,
                     scope: AccessScope | None) -> AsyncIterator[ExplainingSession]:
    """An explaining session in a READ ONLY transaction of ``pool``, rolled back at the
    end (what EXPLAIN ANALYZE ran is undone even if it could have changed anything)."""
    with translated():
        async with pool.checkout(search=True) as conn, conn.transaction(
                force_rollback=True):
            await conn.execute("SET TRANSACTION READ ONLY")
            yield ExplainingSession(conn, search_timeout_ms, scope)
