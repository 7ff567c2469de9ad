"""Small SQL-building helpers shared by the per-type modules and the compiler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

#: An SQL fragment with its ``%s`` parameters, in order.
Fragment = tuple[sql.Composable, list[Any]]
#: The ``p`` a predicate looks for: a parameter key, or an SQL expression computing it
#: (the rows of a contained resource, marked by its id: see ``compile``).
ParamKey = int | Fragment


def p_is(alias: sql.Identifier, p: ParamKey, quoted: bool = True) -> Fragment:
    """``alias."p" = <p>`` (``alias.p`` unless ``quoted``)."""
    column = col(alias, "p") if quoted else sql.SQL("{}.p").format(alias)
    if isinstance(p, int):
        return sql.SQL("{} = %s").format(column), [p]
    return sql.SQL("{} = {}").format(column, p[0]), list(p[1])


def col(alias: sql.Identifier, column: str) -> sql.Composable:
    """``alias.column``."""
    return sql.SQL("{}.{}").format(alias, sql.Identifier(column))


def join(fragments: Sequence[Fragment], separator: str) -> Fragment:
    """The fragments joined by ``separator`` (`` AND ``, `` OR ``), parameters in order."""
    return (sql.SQL(separator).join(f for f, _ in fragments),
            [p for _, params in fragments for p in params])


def join_or(parts: Sequence[Fragment]) -> Fragment:
    """``(a OR b ...)``; ``false`` for no parts."""
    if not parts:
        return sql.SQL("false"), []
    if len(parts) == 1:
        return parts[0]
    text, params = join(parts, " OR ")
    return sql.SQL("({})").format(text), params


def any_of(alias: sql.Identifier, column: str, keys: Sequence[Any],
           array_type: str = "bigint") -> Fragment:
    """``alias.column = %s`` for one value, ``= ANY(%s::<type>[])`` for several."""
    if len(keys) == 1:
        return sql.SQL("{} = %s").format(col(alias, column)), [keys[0]]
    return (sql.SQL("{} = ANY(%s::{}[])").format(col(alias, column), sql.SQL(array_type)),
            [list(keys)])


def on_param(p: ParamKey, alias: sql.Identifier, condition: Fragment) -> Fragment:
    """``alias.p = <p> AND (condition)``: a row of parameter ``p`` meeting ``condition``."""
    key, key_params = p_is(alias, p, quoted=False)
    return (sql.SQL("({} AND {})").format(key, condition[0]), [*key_params, *condition[1]])


def like_escape(text: str) -> str:
    """``text`` with the LIKE wildcards ``%`` and ``_`` (and the escape ``\\``) escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_prefix(text: str) -> str:
    """A LIKE pattern matching strings that start with ``text`` (wildcards escaped)."""
    return like_escape(text) + "%"


def min_max(descending: bool, expression: sql.Composable) -> sql.Composable:
    """``min(expression)`` ascending, ``max(expression)`` descending (sort keys)."""
    return sql.SQL("{}({})").format(sql.SQL("max" if descending else "min"), expression)


def range_sort_key(alias: sql.Identifier, descending: bool) -> sql.Composable:
    """Sort by ranges: the smallest ``low`` ascending, the largest ``high`` descending."""
    return min_max(descending, col(alias, "high" if descending else "low"))
