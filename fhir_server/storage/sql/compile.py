"""The search compiler: a parsed SearchRequest and an access scope -> SQL conditions.

Each clause becomes an ``EXISTS`` over one index table (the type's SQL module gives the
condition on a row); chains and ``_has`` nest those through ``idx_reference``; sorting
joins one lateral aggregate per key; paging is by keyset on (sort keys..., rid), never
OFFSET. The access scope is applied to every resource row the query reaches: the root
row, each chain target and each ``_has`` source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from psycopg import sql

from fhir_server.search.hashing import contained_key
from fhir_server.search.reference import identifier_param_key
from fhir_server.search.request import (
    AnyClause,
    AnyOf,
    Clause,
    Compartment,
    Criterion,
    HasClause,
    MultiType,
    SearchRequest,
    Sort,
)
from fhir_server.search.text import TEXT_PARAMS
from fhir_server.service.access import AccessScope
from fhir_server.storage.sql.common import Fragment, ParamKey, join, p_is
from fhir_server.storage.sql.compartment import member_of
from fhir_server.storage.sql.date import DATE, date_condition
from fhir_server.storage.sql.groups import NEGATIONS, date_ranges, negated, on_rows, plain
from fhir_server.storage.sql.kinds import SQL_TYPES
from fhir_server.storage.sql.paging import SORT_SQL_TYPE, SortKey, Walk
from fhir_server.storage.sql.reference import contained_row_key_sql
from fhir_server.storage.sql.security_context import BINARY, through_security_context
from fhir_server.storage.sql.text import text_condition

_SPECIAL_SORT = {"_id": ("id", "text"), "_lastUpdated": ("last_updated", "timestamptz")}
_R = sql.Identifier("r")
#: Clauses on index rows planned as EXISTS each (the planner may start from the most
#: selective); past them the rest are one INTERSECT (see :meth:`Compiler._all_of`).
OWN_EXISTS = 4


@dataclass
class Query:
    """A compiled search: WHERE conditions and sort keys (paging is applied later)."""

    resource_types: tuple[str, ...]
    where: Fragment
    sort: list[SortKey] = field(default_factory=list)


class Compiler:
    """Compiles SearchRequests and access scopes; one per query (it numbers aliases)."""

    def __init__(self, scope: AccessScope | None = None, reads: bool = True) -> None:
        self._scope = scope
        #: whether the scope is applied to reading (a Binary is then also readable
        #: through its securityContext); False: to a write's permission check
        self._reads = reads
        self._n = 0
        #: while compiling the scope's own criteria: no scope inside them (no recursion)
        self._in_scope = False

    def alias(self) -> sql.Identifier:
        """A fresh alias (unique across nested subqueries)."""
        self._n += 1
        return sql.Identifier(f"a{self._n}")

    def compile(self, request: SearchRequest) -> Query:
        """The WHERE and ORDER BY parts for a request over its resource types."""
        types = request.resource_types
        conditions: list[Fragment] = [
            (sql.SQL("r.resource_type = ANY(%s)") if len(types) > 1
             else sql.SQL("r.resource_type = %s"), [list(types) if len(types) > 1 else types[0]]),
            (sql.SQL("NOT r.deleted"), []),
        ]
        if request.compartment is not None:
            conditions.append(self.in_compartment(request.compartment, _R, owner=False))
        visible = self.visible(_R, types)
        if visible is not None:
            conditions.append(visible)
        ranges = date_ranges(request.clauses)
        negated_groups = negated(request.clauses)
        own = [c for c in request.clauses
               if isinstance(c, Clause) and on_rows(c) and c.name not in ranges]
        intersected = own[OWN_EXISTS:] if len(own) > OWN_EXISTS + 1 else []
        rest = {id(c) for c in intersected}
        for clause in request.clauses:
            if isinstance(clause, Clause) and clause.name in ranges:
                if clause is ranges[clause.name][0]:
                    conditions.append(self._date_range(ranges[clause.name], _R))
                continue
            if isinstance(clause, Clause) and clause.name in negated_groups:
                if clause is negated_groups[clause.name][0]:
                    conditions.append(self._none_of(negated_groups[clause.name], _R))
                continue
            if id(clause) in rest:
                if clause is intersected[0]:
                    conditions.append(self._all_of(intersected, _R))
                continue
            conditions.append(self.clause(clause, _R))
        sort = [self._sort_key(key, i) for i, key in enumerate(request.sort)]
        return Query(types, join(conditions, " AND "), sort)

    # -- the access scope --------------------------------------------------------------

    def visible(self, res: sql.Composable, types: Sequence[str] | None = None
                ) -> Fragment | None:
        """The scope's condition on resource row ``res`` (of one of ``types``; None:
        of any type); None when everything is."""
        scope = self._scope
        if scope is None or self._in_scope:
            return None
        self._in_scope = True
        try:
            binary = self._reads and (types is None or BINARY in types)
            condition = self._admitted_by_rules(scope, res, binary)
            if binary:
                context = self.alias()
                condition = join([condition, through_security_context(
                    res, context, self._admitted_by_rules(scope, context, True))], " OR ")
            return sql.SQL("({})").format(condition[0]), condition[1]
        finally:
            self._in_scope = False

    def _admitted_by_rules(self, scope: AccessScope, res: sql.Composable,
                           binary_apart: bool) -> Fragment:
        """Row ``res`` is admitted by one of the scope's rules; with ``binary_apart`` a
        Binary only by a rule admitting every Binary (a compartment or criteria never
        admit one: its securityContext does)."""
        free: list[Fragment] = []
        in_compartment: list[Fragment] = []
        for rule in scope.rules:
            parts: list[Fragment] = []
            if rule.resource_type is not None:
                parts.append((sql.SQL("{}.resource_type = %s").format(res),
                              [rule.resource_type]))
            elif rule.excluded:
                parts.append((sql.SQL("{}.resource_type <> ALL(%s::text[])").format(res),
                              [sorted(rule.excluded)]))
            parts += [self.clause(c, res) for c in rule.criteria]
            owned = rule.in_compartment and scope.compartment is not None
            if binary_apart and (owned or rule.criteria):
                parts.append((sql.SQL("{}.resource_type <> %s").format(res), [BINARY]))
            condition = join(parts, " AND ") if parts else (sql.SQL("true"), [])
            (in_compartment if owned else free).append(condition)
        if in_compartment and scope.compartment is not None:
            ors = join(in_compartment, " OR ")
            member = self.in_compartment(scope.compartment, res, owner=True)
            free.append(join([(sql.SQL("({})").format(ors[0]), ors[1]), member], " AND "))
        text, params = join(free, " OR ") if free else (sql.SQL("false"), [])
        return sql.SQL("({})").format(text), params

    def in_compartment(self, compartment: Compartment, res: sql.Composable,
                       owner: bool) -> Fragment:
        """``res`` is in the compartment (see :func:`compartment.member_of`)."""
        return member_of(compartment, self.alias(), res, owner)

    # -- clauses -------------------------------------------------------------------------

    def clause(self, clause: AnyClause, res: sql.Composable) -> Fragment:
        """The condition of one clause on resource row ``res``."""
        if isinstance(clause, AnyOf):  # AND binds tighter than OR: no inner parentheses
            text, params = join([join([self.clause(c, res) for c in alternative], " AND ")
                                 for alternative in clause.alternatives], " OR ")
            return sql.SQL("({})").format(text), params
        if isinstance(clause, MultiType):
            text, params = join([self.clause(c, res) for c in clause.per_type], " OR ")
            return sql.SQL("({})").format(text), params
        if isinstance(clause, HasClause):
            return self._has(clause, res)
        if clause.chain:
            return self._chain(clause, 0, res)
        return self._criterion(clause.criteria[0], res)

    def _criterion(self, criterion: Criterion, res: sql.Composable,
                   key: Fragment | None = None) -> Fragment:
        """The criterion on the rows of ``res``; with ``key`` (the SQL of their ``p``) on
        the rows of a contained resource of ``res`` (values parsed for them)."""
        param, modifier, values = criterion.param, criterion.modifier, criterion.values
        if key is not None:
            return self._rows(criterion, res, key)
        if param.code == "_id":
            return _column_id(modifier, values, res)
        if param.code == "_lastUpdated":
            return self._column_date(criterion, res)
        if param.code in TEXT_PARAMS:
            return text_condition(param.code, modifier, values, res, self.alias())
        return self._rows(criterion, res, param.p)

    def _rows(self, criterion: Criterion, res: sql.Composable, p: ParamKey) -> Fragment:
        """The criterion as an EXISTS over its index table's rows of ``res`` whose ``p``
        is ``p`` (a parameter key, or an SQL expression for a contained resource)."""
        param, modifier, values = criterion.param, criterion.modifier, criterion.values
        kind = SQL_TYPES[param.type]
        if modifier == "identifier":
            kind, p, modifier = SQL_TYPES["token"], identifier_param_key(
                param.resource_type, param.code), None
        alias = self.alias()
        table = sql.Identifier(kind.table)
        if modifier == "missing":
            on = p_is(alias, p, quoted=False)
            exists = sql.SQL("EXISTS (SELECT 1 FROM {} {} WHERE {}.rid = {}.rid AND {})"
                             ).format(table, alias, alias, res, on[0])
            return (sql.SQL("NOT {}").format(exists) if values[0] else exists), on[1]
        predicate, params = kind.predicate(p, modifier, values, alias)
        exists = sql.SQL("EXISTS (SELECT 1 FROM {} {} WHERE {}.rid = {}.rid AND {})").format(
            table, alias, alias, res, predicate)
        if modifier in NEGATIONS:
            return sql.SQL("NOT {}").format(exists), params
        return exists, params

    def _date_range(self, clauses: Sequence[Clause], res: sql.Composable) -> Fragment:
        """Repeated bounds on one date parameter (``date=ge..&date=lt..``) as one EXISTS:
        all apply to the same stored value, as HAPI reads a range (one EXISTS each made
        PostgreSQL visit every row past the lower bound)."""
        a = self.alias()
        predicate, params = DATE.range_predicate(
            clauses[0].param.p, [c.criteria[0].values for c in clauses], a)
        return sql.SQL("EXISTS (SELECT 1 FROM idx_date {a} WHERE {a}.rid = {res}.rid AND {p})"
                       ).format(a=a, res=res, p=predicate), params

    def _all_of(self, clauses: Sequence[Clause], res: sql.Composable) -> Fragment:
        """Clauses on index rows (each may match another row of ``res``) as one
        condition: ``res.rid IN (rids of the first INTERSECT rids of the next ...)``.

        One EXISTS each gave the planner one semi-join each, all joined on ``rid``:
        planning grew faster than the square of their number (40 parameters took 0.3 s
        to plan, 200 repetitions of ``name`` 16 s, for searches that then ran in
        milliseconds); a set operation is planned branch by branch.
        """
        branches: list[Fragment] = []
        for clause in clauses:
            criterion = clause.criteria[0]
            param, modifier = criterion.param, criterion.modifier
            kind = SQL_TYPES[param.type]
            p: ParamKey = param.p
            if modifier == "identifier":
                kind, p, modifier = SQL_TYPES["token"], identifier_param_key(
                    param.resource_type, param.code), None
            alias = self.alias()
            predicate, params = kind.predicate(p, modifier, criterion.values, alias)
            branches.append((sql.SQL("SELECT {a}.rid FROM {t} {a} WHERE {p}").format(
                a=alias, t=sql.Identifier(kind.table), p=predicate), params))
        text, params = join(branches, " INTERSECT ")
        return sql.SQL("{}.rid IN ({})").format(res, text), params

    def _none_of(self, clauses: Sequence[Clause], res: sql.Composable) -> Fragment:
        """A negated parameter repeated (``code:not=a&code:not=b``): no row of ``res``
        matches any of the values, one ``NOT EXISTS`` (one anti-join to plan)."""
        first = clauses[0].criteria[0]
        values = tuple(v for c in clauses for v in c.criteria[0].values)
        return self._rows(Criterion(first.param, first.modifier, values), res,
                          first.param.p)

    def _column_date(self, criterion: Criterion, res: sql.Composable) -> Fragment:
        if criterion.modifier == "missing":
            return (sql.SQL("false") if criterion.values[0] else sql.SQL("true")), []
        # A point in time: [last_updated, last_updated + 1 microsecond).
        low = sql.SQL("{}.last_updated").format(res)
        high = sql.SQL("({}.last_updated + interval '1 microsecond')").format(res)
        parts = [date_condition(v, low, high) for v in criterion.values]
        text, params = join(parts, " OR ")
        return sql.SQL("({})").format(text), params

    def _chain(self, clause: Clause, hop: int, res: sql.Composable,
               local: sql.Composable | None = None) -> Fragment:
        """``res`` refers through the hop's parameter to a resource matching the rest.

        ``local``: the hop starts inside a contained resource of ``res`` (the SQL of its
        ``#id``, the ``url`` of the reference that led there). One branch per target type
        and one per contained target type, as ``res.rid IN (... UNION ALL ...)``: each
        branch's criterion is planned on its own (an index on the criterion's rows
        drives it), with or without fresh statistics, where one EXISTS with
        ``target_type = ANY(...)`` and an OR of per-type criteria was scanned row by row.
        """
        link = clause.chain[hop]
        last = hop + 1 == len(clause.chain)
        branches: list[Fragment] = []
        targets: list[tuple[str, Criterion | None]]
        inside: list[Criterion | None]
        if last:
            options = [c for c in clause.criteria
                       if c.param.resource_type in link.target_types] or [clause.criteria[0]]
            targets = [(o.param.resource_type, o) for o in options]
            inside = [c for c in clause.contained if c.param.resource_type in link.target_types]
        else:
            targets = [(t, None) for t in link.target_types]
            inside = [None]
        for rtype, option in targets:
            ref, target = self.alias(), self.alias()
            inner = (self._criterion(option, target) if option is not None
                     else self._chain(clause, hop + 1, target))
            inner = self._and_visible(inner, target)
            on = self._link_p(link.param.p, ref, local)
            branches.append((sql.SQL(
                "SELECT {ref}.rid FROM idx_reference {ref} JOIN resource {t}"
                " ON {t}.resource_type = {ref}.target_type AND {t}.id = {ref}.target_id"
                " WHERE {on} AND {ref}.target_type = %s AND NOT {t}.deleted AND {inner}"
            ).format(ref=ref, t=target, on=on[0], inner=inner[0]), [
                *on[1], rtype, *inner[1]]))
        for option in inside:
            # A contained target: its rows are the container's (ref.rid), marked by the
            # '#id' the reference holds (and by the contained type's parameter key, so no
            # target_type test is needed); the container is the row already checked. The
            # reference rows are found by (p, url) in the partial url index.
            ref = self.alias()
            url = sql.SQL("{}.url").format(ref)
            if option is not None:
                key = contained_row_key_sql(contained_key(option.param.p), url)
                inner = self._criterion(option, ref, key)
            else:
                inner = self._chain(clause, hop + 1, ref, url)
            on = self._link_p(link.param.p, ref, local)
            branches.append((sql.SQL(
                "SELECT {ref}.rid FROM idx_reference {ref} WHERE {on}"
                " AND {ref}.url LIKE '#%%' AND {inner}"
            ).format(ref=ref, on=on[0], inner=inner[0]), [*on[1], *inner[1]]))
        union, params = join(branches, " UNION ALL ")
        return sql.SQL("{}.rid IN ({})").format(res, union), params

    @staticmethod
    def _link_p(p: int, ref: sql.Identifier, local: sql.Composable | None) -> Fragment:
        """``ref`` is a row of reference parameter ``p``: of the resource itself, or of
        its contained resource ``local`` (see :meth:`_chain`)."""
        if local is None:
            return sql.SQL("{}.p = %s").format(ref), [p]
        key = contained_row_key_sql(contained_key(p), local)
        return sql.SQL("{}.p = {}").format(ref, key[0]), key[1]

    def _and_visible(self, condition: Fragment, res: sql.Composable) -> Fragment:
        """``condition`` and the scope's condition on the hop's resource row ``res``."""
        visible = self.visible(res)
        return condition if visible is None else join([condition, visible], " AND ")

    def _has(self, clause: HasClause, res: sql.Composable) -> Fragment:
        ref = self.alias()
        source = self.alias()
        if plain(clause.inner) is not None and self.visible(source) is None:
            # On the source's own index rows (a current version's, like the reference
            # row): no resource row to join, one probe less per source.
            inner = self.clause(clause.inner, ref)
            return sql.SQL(
                "EXISTS (SELECT 1 FROM idx_reference {ref} WHERE {ref}.p = %s AND"
                " {ref}.target_type = {res}.resource_type AND {ref}.target_id = {res}.id"
                " AND {inner})").format(ref=ref, res=res, inner=inner[0]), [
                    clause.reference.p, *inner[1]]
        if isinstance(clause.inner, HasClause):
            inner = self._has(clause.inner, source)
        else:
            inner = self.clause(clause.inner, source)
        inner = self._and_visible(inner, source)
        return sql.SQL(
            "EXISTS (SELECT 1 FROM idx_reference {ref} JOIN resource {s} ON {s}.rid = {ref}.rid"
            " WHERE {ref}.p = %s AND {ref}.target_type = {res}.resource_type"
            " AND {ref}.target_id = {res}.id AND {inner})"
        ).format(ref=ref, s=source, res=res, inner=inner[0]), [clause.reference.p, *inner[1]]

    # -- sorting -------------------------------------------------------------------------

    def _sort_key(self, key: Sort, index: int) -> SortKey:
        if key.code in _SPECIAL_SORT:
            column, sql_type = _SPECIAL_SORT[key.code]
            return SortKey(sql.SQL("r.{}").format(sql.Identifier(column)), sql_type,
                           key.descending)
        kind = SQL_TYPES[key.params[0].type]
        alias = self.alias()
        name = sql.Identifier(f"s{index}")
        lateral = sql.SQL(
            "LEFT JOIN LATERAL (SELECT {agg} AS v FROM {table} {a} WHERE {a}.rid = r.rid"
            " AND {a}.p = ANY(%s)) {name} ON true"
        ).format(agg=kind.sort_key(alias, key.descending), table=sql.Identifier(kind.table),
                 a=alias, name=name)
        # One date parameter: a page can walk its (p, low|high, rid) index instead.
        walk = (Walk(kind.table, key.params[0].p, "high" if key.descending else "low")
                if kind is DATE and len(key.params) == 1 else None)
        return SortKey(sql.SQL("{}.v").format(name),
                       SORT_SQL_TYPE.get(key.params[0].type, "text"), key.descending,
                       (lateral, [[p.p for p in key.params]]), walk)


def _column_id(modifier: str | None, values: Sequence[object],
               res: sql.Composable) -> Fragment:
    if modifier == "missing":
        return (sql.SQL("false") if values[0] else sql.SQL("true")), []
    condition = sql.SQL("{}.id = ANY(%s)").format(res)
    if modifier == "not":
        return sql.SQL("NOT ({})").format(condition), [list(values)]
    return condition, [list(values)]
