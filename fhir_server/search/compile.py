"""The search compiler: a parsed SearchRequest -> parameterized SQL over the index tables.

Each clause becomes an ``EXISTS`` over one index table (the type module gives the
predicate); chains and ``_has`` nest those through ``idx_reference``; sorting joins one
lateral aggregate per key; paging is by keyset on (sort keys..., rid), never OFFSET.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Fragment, IndexType, SearchContext
from fhir_server.search.hashing import param_key
from fhir_server.search.parse import Clause, HasClause, MultiType, SearchRequest
from fhir_server.search.registry import SearchParam

#: SQL type of each parameter type's sort value (to cast cursor values back).
SORT_SQL_TYPE = {"date": "timestamptz", "number": "numeric", "quantity": "numeric"}
_SPECIAL_SORT = {"_id": ("id", "text"), "_lastUpdated": ("last_updated", "timestamptz")}


def _join(fragments: Sequence[Fragment], separator: str) -> Fragment:
    parts = [f[0] for f in fragments]
    params = [p for f in fragments for p in f[1]]
    return sql.SQL(separator).join(parts), params


@dataclass
class SortKey:
    """One ``_sort`` key compiled: the expression to order by and its SQL type."""

    expression: sql.Composable
    sql_type: str
    descending: bool
    join: Fragment | None = None


@dataclass
class Query:
    """A compiled search: WHERE conditions and sort keys (paging is applied later)."""

    resource_types: tuple[str, ...]
    where: Fragment
    sort: list[SortKey] = field(default_factory=list)


class Compiler:
    """Compiles SearchRequests with the index types given by parameter type code."""

    def __init__(self, kinds: Mapping[str, IndexType],
                 lookup: Callable[[str, str], SearchParam | None]) -> None:
        self._kinds = kinds
        self._lookup = lookup

    def compile(self, request: SearchRequest, ctx: SearchContext,
                extra: Sequence[Fragment] = ()) -> Query:
        """The WHERE and ORDER BY parts for a request over its resource types."""
        state = _State()
        types = request.resource_types
        conditions: list[Fragment] = [
            (sql.SQL("r.resource_type = ANY(%s)") if len(types) > 1
             else sql.SQL("r.resource_type = %s"), [list(types) if len(types) > 1 else types[0]]),
            (sql.SQL("NOT r.deleted"), []),
        ]
        conditions += list(extra)
        ranges = _date_ranges(request.clauses)
        for clause in request.clauses:
            if isinstance(clause, Clause) and clause.name in ranges:
                if clause is ranges[clause.name][0]:
                    conditions.append(self._date_range(ranges[clause.name], state, ctx))
                continue
            conditions.append(self._any(clause, state, ctx))
        sort = [self._sort_key(request, code, desc, state, i)
                for i, (code, desc) in enumerate(request.sort)]
        return Query(types, _join(conditions, " AND "), sort)

    # -- clauses ---------------------------------------------------------------------

    def _any(self, clause: Clause | HasClause | MultiType, state: _State,
             ctx: SearchContext) -> Fragment:
        if isinstance(clause, MultiType):
            parts = [self._any(c, state, ctx) for c in clause.per_type]
            sql_text, params = _join(parts, " OR ")
            return sql.SQL("({})").format(sql_text), params
        if isinstance(clause, HasClause):
            return self._has(clause, state, ctx, sql.SQL("r"))
        return self._clause(clause, state, ctx, sql.SQL("r"))

    def _clause(self, clause: Clause, state: _State, ctx: SearchContext,
                res: sql.Composable) -> Fragment:
        if clause.chain:
            return self._chain(clause, 0, state, ctx, res)
        return self._param(clause.param, clause.modifier, clause.values, state, ctx, res)

    def _param(self, param: SearchParam, modifier: str | None, values: Sequence[str],
               state: _State, ctx: SearchContext, res: sql.Composable) -> Fragment:
        if param.code == "_id":
            return self._column_id(modifier, values, res)
        if param.code == "_lastUpdated":
            return self._column_date(param, modifier, values, state, ctx, res)
        if param.type == "reference" and modifier == "identifier":
            kind = self._kinds["token"]
            p = param_key(param.resource_type, f"{param.code}:identifier")
            modifier = None
        else:
            kind = self._kinds.get(param.type)  # type: ignore[assignment]
            p = param.p
        if kind is None:
            raise BadRequest(f"parameters of type {param.type} ({param.code}) are not "
                             "searchable here")
        alias = state.alias()
        table = sql.Identifier(kind.table)
        if modifier == "missing":
            exists = sql.SQL("EXISTS (SELECT 1 FROM {} {} WHERE {}.rid = {}.rid AND {}.p = %s)"
                             ).format(table, alias, alias, res, alias)
            negate = values[-1] == "true"
            return (sql.SQL("NOT {}").format(exists) if negate else exists), [p]
        if param.type == "reference" and modifier in param.targets:
            ctx = _with_targets(ctx, (modifier,))
            modifier = None
        elif param.type == "reference":
            ctx = _with_targets(ctx, param.targets)
        if param.type == "composite":
            ctx = _with_components(ctx, param)
        try:
            predicate, params = kind.predicate(p, modifier, values, alias, ctx)
        except BadRequest as exc:
            # Name the parameter: the type module only knows the value.
            raise BadRequest(f"search parameter {param.code!r}: {exc.diagnostics}") from None
        exists = sql.SQL("EXISTS (SELECT 1 FROM {} {} WHERE {}.rid = {}.rid AND {})").format(
            table, alias, alias, res, predicate)
        if modifier in ("not", "not-in"):
            return sql.SQL("NOT {}").format(exists), params
        return exists, params

    def _date_range(self, clauses: Sequence[Clause], state: _State,
                    ctx: SearchContext) -> Fragment:
        """Repeated bounds on one date parameter (``date=ge..&date=lt..``) as one EXISTS.

        All bounds apply to the same stored value, as HAPI reads a range; separate EXISTS
        clauses made PostgreSQL visit every row past the lower bound.
        """
        param = clauses[0].param
        kind = self._kinds["date"]
        alias = state.alias()
        parts: list[Fragment] = []
        for clause in clauses:
            try:
                parts.append(kind.predicate(param.p, None, clause.values, alias, ctx))
            except BadRequest as exc:
                raise BadRequest(f"search parameter {param.code!r}: {exc.diagnostics}"
                                 ) from None
        predicate, params = _join(parts, " AND ")
        return sql.SQL("EXISTS (SELECT 1 FROM {t} {a} WHERE {a}.rid = r.rid AND {p})").format(
            t=sql.Identifier(kind.table), a=alias, p=predicate), params

    def _column_id(self, modifier: str | None, values: Sequence[str],
                   res: sql.Composable) -> Fragment:
        if modifier == "missing":
            return (sql.SQL("false") if values[-1] == "true" else sql.SQL("true")), []
        condition = sql.SQL("{}.id = ANY(%s)").format(res)
        if modifier == "not":
            return sql.SQL("NOT ({})").format(condition), [list(values)]
        if modifier is not None:
            raise BadRequest(f"modifier :{modifier} is not supported on _id")
        return condition, [list(values)]

    def _column_date(self, param: SearchParam, modifier: str | None, values: Sequence[str],
                     state: _State, ctx: SearchContext, res: sql.Composable) -> Fragment:
        if modifier == "missing":
            return (sql.SQL("false") if values[-1] == "true" else sql.SQL("true")), []
        if modifier is not None:
            raise BadRequest(f"modifier :{modifier} is not supported on _lastUpdated")
        alias = state.alias()
        try:
            predicate, params = self._kinds["date"].predicate(param.p, None, values, alias, ctx)
        except BadRequest as exc:
            raise BadRequest(f"search parameter '_lastUpdated': {exc.diagnostics}") from None
        # The date module's predicate reads (p, low, high) of a row: give it one made of
        # the resource's own column, a point in time.
        return sql.SQL(
            "EXISTS (SELECT 1 FROM (SELECT %s::bigint AS p, {res}.last_updated AS low,"
            " {res}.last_updated + interval '1 microsecond' AS high) {a} WHERE {pred})"
        ).format(res=res, a=alias, pred=predicate), [param.p, *params]

    def _chain(self, clause: Clause, hop: int, state: _State, ctx: SearchContext,
               res: sql.Composable) -> Fragment:
        link = clause.chain[hop]
        ref = state.alias()
        target = state.alias()
        if hop + 1 < len(clause.chain):
            inner = self._chain(clause, hop + 1, state, ctx, target)
        else:
            options = [p for p in clause.alternatives if p.resource_type in link.target_types]
            parts = []
            for option in options or [clause.param]:
                cond, params = self._param(option, clause.modifier, clause.values, state,
                                           ctx, target)
                parts.append((sql.SQL("({}.resource_type = %s AND {})").format(target, cond),
                              [option.resource_type, *params]))
            joined, joined_params = _join(parts, " OR ")
            inner = sql.SQL("({})").format(joined), joined_params
        return sql.SQL(
            "EXISTS (SELECT 1 FROM idx_reference {ref} JOIN resource {t}"
            " ON {t}.resource_type = {ref}.target_type AND {t}.id = {ref}.target_id"
            " WHERE {ref}.rid = {res}.rid AND {ref}.p = %s AND {ref}.target_type = ANY(%s)"
            " AND NOT {t}.deleted AND {inner})"
        ).format(ref=ref, t=target, res=res, inner=inner[0]), [
            link.param.p, list(link.target_types), *inner[1]]

    def _has(self, clause: HasClause, state: _State, ctx: SearchContext,
             res: sql.Composable) -> Fragment:
        ref = state.alias()
        source = state.alias()
        if isinstance(clause.inner, HasClause):
            inner = self._has(clause.inner, state, ctx, source)
        else:
            inner = self._clause(clause.inner, state, ctx, source)
        return sql.SQL(
            "EXISTS (SELECT 1 FROM idx_reference {ref} JOIN resource {s} ON {s}.rid = {ref}.rid"
            " WHERE {ref}.p = %s AND {ref}.target_type = {res}.resource_type"
            " AND {ref}.target_id = {res}.id AND {inner})"
        ).format(ref=ref, s=source, res=res, inner=inner[0]), [clause.reference.p, *inner[1]]

    # -- sorting ---------------------------------------------------------------------

    def _sort_key(self, request: SearchRequest, code: str, descending: bool, state: _State,
                  index: int) -> SortKey:
        if code in _SPECIAL_SORT:
            column, sql_type = _SPECIAL_SORT[code]
            return SortKey(sql.SQL("r.{}").format(sql.Identifier(column)), sql_type,
                           descending)
        params = [p for p in (self._lookup(t, code) for t in request.resource_types)
                  if p is not None]
        if not params:
            raise BadRequest(f"_sort: unknown parameter {code!r}")
        kind = self._kinds.get(params[0].type)
        if kind is None or params[0].type == "composite":
            raise BadRequest(f"_sort: cannot sort by {params[0].type} parameter {code!r}")
        alias = state.alias()
        name = sql.Identifier(f"s{index}")
        join = sql.SQL(
            "LEFT JOIN LATERAL (SELECT {agg} AS v FROM {table} {a} WHERE {a}.rid = r.rid"
            " AND {a}.p = ANY(%s)) {name} ON true"
        ).format(agg=kind.sort_key(alias, descending), table=sql.Identifier(kind.table),
                 a=alias, name=name)
        return SortKey(sql.SQL("{}.v").format(name), SORT_SQL_TYPE.get(params[0].type, "text"),
                       descending, (join, [[p.p for p in params]]))


class _State:
    """Per-query alias counter (aliases must be unique across nested subqueries)."""

    def __init__(self) -> None:
        self._n = 0

    def alias(self) -> sql.Identifier:
        self._n += 1
        return sql.Identifier(f"a{self._n}")


def _date_ranges(clauses: Sequence[Clause | HasClause | MultiType]
                 ) -> dict[str, list[Clause]]:
    """Plain single-value clauses on the same date parameter, when there are several."""
    groups: dict[str, list[Clause]] = {}
    for clause in clauses:
        if (isinstance(clause, Clause) and clause.param.type == "date" and not clause.chain
                and clause.modifier is None and len(clause.values) == 1
                and clause.param.code != "_lastUpdated"):
            groups.setdefault(clause.name, []).append(clause)
    return {name: group for name, group in groups.items() if len(group) > 1}


def _with_targets(ctx: SearchContext, targets: Sequence[str]) -> SearchContext:
    return replace(ctx, targets=tuple(targets))


def _with_components(ctx: SearchContext, param: SearchParam) -> SearchContext:
    return replace(ctx, targets=tuple(c.type for c in param.components))


def keyset(sort: Sequence[SortKey], cursor: Sequence[Any], backwards: bool) -> Fragment:
    """Rows strictly after (or before, ``backwards``) ``cursor`` in the sort order.

    ``cursor`` holds one value per sort key then the rid. NULL sort values come last in
    both directions (``NULLS LAST``), so nothing sorts after a NULL but its ties.
    """
    ors: list[Fragment] = []
    equal: list[Fragment] = []
    for key, value in zip(sort, cursor, strict=False):
        after_op = "<" if key.descending != backwards else ">"
        cast = sql.SQL(key.sql_type)
        if value is None:
            if backwards:
                ors.append(_join([*equal, (sql.SQL("{} IS NOT NULL").format(key.expression),
                                           [])], " AND "))
            equal.append((sql.SQL("{} IS NULL").format(key.expression), []))
            continue
        step = (sql.SQL("{} {} %s::{}").format(key.expression, sql.SQL(after_op), cast),
                [value])
        if not backwards:
            step = (sql.SQL("({} OR {} IS NULL)").format(step[0], key.expression), step[1])
        ors.append(_join([*equal, step], " AND "))
        equal.append((sql.SQL("{} = %s::{}").format(key.expression, cast), [value]))
    rid_op = "<" if backwards else ">"
    ors.append(_join([*equal, (sql.SQL(f"r.rid {rid_op} %s"), [cursor[-1]])], " AND "))
    joined, params = _join([(sql.SQL("({})").format(o[0]), o[1]) for o in ors], " OR ")
    return sql.SQL("({})").format(joined), params


def order_by(sort: Sequence[SortKey], backwards: bool) -> sql.Composable:
    """ORDER BY for the sort keys then rid, reversed when paging backwards."""
    parts: list[sql.Composable] = []
    for key in sort:
        descending = key.descending != backwards
        nulls = "NULLS FIRST" if backwards else "NULLS LAST"
        parts.append(sql.SQL("{} {} {}").format(
            key.expression, sql.SQL("DESC" if descending else "ASC"), sql.SQL(nulls)))
    parts.append(sql.SQL("r.rid DESC" if backwards else "r.rid ASC"))
    return sql.SQL(", ").join(parts)


def compartment_condition(p_values: Sequence[int], owner_type: str, owner_id: str) -> Fragment:
    """Resources linked to the compartment owner through any of the parameters."""
    return sql.SQL(
        "EXISTS (SELECT 1 FROM idx_reference c WHERE c.rid = r.rid AND c.p = ANY(%s)"
        " AND c.target_type = %s AND c.target_id = %s)"
    ), [list(p_values), owner_type, owner_id]
