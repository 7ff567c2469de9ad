"""The contract between the search compiler and the per-type index modules.

Each parameter-type module (``token``, ``string``, ``date``, ``number``, ``quantity``,
``reference``, ``uri``, ``composite``) exposes one object satisfying :class:`IndexType`:
``rows`` turns extracted values into rows of its table (written in the same transaction
as the resource), ``predicate`` turns the comma-separated (OR) values of one search
parameter into an SQL condition over one row of that table, and ``sort_key`` gives the
per-resource value to order by.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from psycopg import sql

from fhir_server.errors import BadRequest

#: An SQL fragment with its ``%s`` parameters, in order.
Fragment = tuple[sql.Composable, list[Any]]


@dataclass(frozen=True, slots=True)
class Node:
    """One value found by a SearchParameter expression, with its FHIR data type.

    ``value`` is the JSON value (a dict for complex types, str/int/float/bool for
    primitives); ``type`` is the FHIR type code such as ``CodeableConcept``, ``Coding``,
    ``Identifier``, ``ContactPoint``, ``code``, ``string``, ``HumanName``, ``Address``,
    ``Reference``, ``canonical``, ``uri``, ``date``, ``dateTime``, ``instant``,
    ``Period``, ``Timing``, ``Quantity`` (also ``Age``, ``Duration``, ``Money`` ...),
    ``Range``, ``decimal``, ``integer``, ``boolean``.
    """

    value: Any
    type: str


@dataclass(frozen=True, slots=True)
class SearchContext:
    """What predicates may need besides the value: base URL, clock, terminology."""

    #: This server's FHIR base, e.g. ``https://h.example/fhir`` (references to it are local).
    base_url: str = ""
    now: datetime | None = None
    #: ``:in``/``:not-in``: value set URL -> set of (system, code); None if unknown.
    expand_valueset: Any = None
    #: for a reference parameter: the resource types it may point to.
    targets: tuple[str, ...] = field(default_factory=tuple)


class IndexType(Protocol):
    """One index table: its rows and its predicates."""

    #: parameter type code: token, string, date, number, quantity, reference, uri, composite
    name: str
    #: table name, e.g. ``idx_token``
    table: str
    #: the table's columns after ``rid`` and ``p``, in order, as (name, SQL type)
    columns: tuple[tuple[str, str], ...]
    #: modifiers this type understands (besides :missing, which the compiler handles)
    modifiers: frozenset[str]

    def rows(self, p: int, nodes: Sequence[Node], ctx: SearchContext) -> list[tuple[Any, ...]]:
        """Rows for the values of one parameter of one resource: ``(p, *columns)`` each."""
        ...

    def predicate(self, p: int, modifier: str | None, values: Sequence[str],
                  alias: sql.Identifier, ctx: SearchContext) -> Fragment:
        """A condition on one row ``alias`` of the table matching ANY of ``values``.

        Values are raw (comma-split, ``\\,`` already unescaped; ``\\|``, ``\\$`` and
        ``\\\\`` still escaped). The condition must include ``alias.p = <p>`` (or an
        equivalent hash that encodes ``p``). Raise ``fhir_server.errors.BadRequest``
        naming the problem for malformed values or unsupported modifiers.
        """
        ...

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """An aggregate over the parameter's rows ``alias`` giving the value to sort by."""
        ...


_ESCAPED = re.compile(r"\\(.)")


def split_escaped(value: str, separator: str, maxsplit: int = -1) -> list[str]:
    """Split on ``separator`` where it is not escaped with a backslash."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            current.append(value[i:i + 2])
            i += 2
            continue
        if char == separator and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(value: str) -> str:
    """Remove search escapes: ``\\|`` -> ``|``, ``\\$`` -> ``$``, ``\\,`` -> ``,``."""
    return _ESCAPED.sub(r"\1", value)


def normalize(text: str) -> str:
    """Case- and accent-insensitive form of a string (for string search and :text)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def any_value(p: int, alias: sql.Identifier, conditions: Iterable[Fragment], kind: str,
              modifier: str | None = None) -> Fragment:
    """``alias`` is a row of parameter ``p`` matching any of ``conditions`` (OR).

    For the types that take no modifier: one is refused before ``conditions`` (a
    generator) is read. ``kind`` names the parameter type in errors.
    """
    if modifier is not None:
        raise BadRequest(f"modifier :{modifier} is not supported on {kind} parameters")
    parts: list[sql.Composable] = []
    params: list[Any] = [p]
    for cond, cond_params in conditions:
        parts.append(cond)
        params.extend(cond_params)
    if not parts:
        raise BadRequest(f"a {kind} parameter needs a value")
    return sql.SQL("({}.p = %s AND ({}))").format(alias, sql.SQL(" OR ").join(parts)), params


def range_sort_key(alias: sql.Identifier, descending: bool) -> sql.Composable:
    """Sort by ranges: the smallest ``low`` ascending, the largest ``high`` descending."""
    if descending:
        return sql.SQL("max({}.high)").format(alias)
    return sql.SQL("min({}.low)").format(alias)
