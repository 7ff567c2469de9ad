"""Which clauses of a search the compiler plans together: repeated bounds of one date,
repeated negations of one parameter, and the clauses on the resource's own index rows."""

from __future__ import annotations

from collections.abc import Sequence

from fhir_server.search.registry import COLUMN_PARAMS
from fhir_server.search.request import AnyClause, Clause, Criterion
from fhir_server.search.text import TEXT_PARAMS

#: Modifiers whose clause is a NOT EXISTS.
NEGATIONS = frozenset({"not", "not-in"})


def date_ranges(clauses: Sequence[AnyClause]) -> dict[str, list[Clause]]:
    """Plain single-value clauses on the same date parameter, when there are several."""
    groups: dict[str, list[Clause]] = {}
    for clause in clauses:
        if not isinstance(clause, Clause) or clause.chain or len(clause.criteria) != 1:
            continue
        criterion = clause.criteria[0]
        if (criterion.param.type == "date" and criterion.modifier is None
                and len(criterion.values) == 1 and criterion.param.code != "_lastUpdated"):
            groups.setdefault(clause.name, []).append(clause)
    return {name: group for name, group in groups.items() if len(group) > 1}


def plain(clause: AnyClause) -> Criterion | None:
    """The criterion of a clause on the searched resource's own index rows, if it is."""
    if not isinstance(clause, Clause) or clause.chain or len(clause.criteria) != 1:
        return None
    criterion = clause.criteria[0]
    code = criterion.param.code
    if criterion.modifier == "missing" or code in TEXT_PARAMS or code in COLUMN_PARAMS:
        return None
    return criterion


def on_rows(clause: AnyClause) -> bool:
    """A clause some index row of the resource must match (an EXISTS on its own)."""
    criterion = plain(clause)
    return criterion is not None and criterion.modifier not in NEGATIONS


def negated(clauses: Sequence[AnyClause]) -> dict[str, list[Clause]]:
    """Negated clauses (``:not``, ``:not-in``) of the same parameter, when repeated."""
    groups: dict[str, list[Clause]] = {}
    for clause in clauses:
        criterion = plain(clause)
        if criterion is not None and criterion.modifier in NEGATIONS:
            assert isinstance(clause, Clause)
            groups.setdefault(clause.name, []).append(clause)
    return {name: group for name, group in groups.items() if len(group) > 1}
