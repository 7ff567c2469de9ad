"""``_explain=true`` on a search: its SQL and PostgreSQL's plans, as a Parameters resource.

Only an operator may ask (the admin scope, ``system/*.*``, or authorization off on
loopback): a plan shows table sizes, index use and timings of data the caller may not
otherwise see counted. The check comes before the search is parsed, so a refused
``_explain`` never reaches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_server.errors import BadRequest, Forbidden
from fhir_server.service.access import RequestContext
from fhir_server.service.repository import QueryPlan

NAME = "_explain"


def wanted(pairs: Sequence[tuple[str, str]], context: RequestContext) -> bool:
    """Whether the search asks for ``_explain=true`` (Forbidden unless the caller is an
    operator, BadRequest for a value but true or false)."""
    values = [v for k, v in pairs if k == NAME]
    if not values:
        return False
    value = values[-1].strip().lower()
    if value not in ("true", "false"):
        raise BadRequest(f"_explain takes true or false, not {values[-1]!r}")
    if value == "false":
        return False
    scope = context.scope
    if scope is not None and not scope.admin:
        raise Forbidden("_explain needs the admin scope (system/*.*)")
    return True


def without(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The search's own parameters (``_explain`` is not one)."""
    return [(k, v) for k, v in pairs if k != NAME]


def parameters(plans: Sequence[QueryPlan]) -> dict[str, Any]:
    """One ``query`` parameter per statement, in the order they ran: ``purpose``,
    ``sql`` (``$n`` placeholders), ``parameters`` (their values, JSON), ``plan`` (the
    JSON text of ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)``), ``planningTime`` and
    ``executionTime`` (milliseconds)."""
    out = []
    for plan in plans:
        parts: list[dict[str, Any]] = [
            {"name": "purpose", "valueCode": plan.purpose},
            {"name": "sql", "valueString": plan.sql},
            {"name": "parameters", "valueString": plan.parameters},
            {"name": "plan", "valueString": plan.plan},
        ]
        for name, ms in (("planningTime", plan.planning_ms),
                         ("executionTime", plan.execution_ms)):
            if ms is not None:
                parts.append({"name": name, "valueDecimal": ms})
        out.append({"name": "query", "part": parts})
    return {"resourceType": "Parameters", "parameter": out}
