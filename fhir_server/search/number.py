"""Number search parameters: values as closed ranges ``[low, high]`` (``idx_number``).

A plain number is stored with ``low = high``; a Range from its low to its high value,
an open end being ``-Infinity``/``Infinity``. The search value's implicit precision
(R4 search.html, "number") defines its range: ``100`` is ``[99.5, 100.5)``, ``100.00``
is ``[99.995, 100.005)`` and ``1e2`` (one significant figure) ``[50, 150)``. That range
is used by ``eq``, ``ne`` and ``ap``; for ``gt lt ge le sa eb`` "the implicit precision
of the number is ignored" and the value is exact:

=====  ===============================  ==========================================
``eq``  target inside the search range   ``low >= lo AND high < hi``
``ne``  not ``eq``                       ``low < lo OR high >= hi``
``gt``  some of the target above v       ``high > v``      (``ge``: ``high >= v``)
``lt``  some of the target below v       ``low < v``       (``le``: ``low <= v``)
``sa``  the target starts after v        ``low > v``
``eb``  the target ends before v         ``high < v``
``ap``  overlaps v ± 10 % (at least the  ``low <= ahi AND high >= alo``
        search range)
=====  ===============================  ==========================================

Arithmetic is done with :class:`~decimal.Decimal` and values reach PostgreSQL as
``numeric``, never as binary floating point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext, refuse_modifier
from fhir_server.search.date import parse_prefix

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER_TYPES = frozenset({"integer", "decimal", "positiveInt", "unsignedInt", "integer64"})
#: Limits on a search value, well inside PostgreSQL's numeric; with them every sum below
#: is exact at _PRECISION digits.
_MAX_DIGITS = 100
_MAX_EXPONENT = 1000
_PRECISION = 2 * (_MAX_DIGITS + _MAX_EXPONENT)

NEG_INF = Decimal("-Infinity")
POS_INF = Decimal("Infinity")


@dataclass(frozen=True, slots=True)
class SearchNumber:
    """A number search value: its exact ``value`` and implicit range ``[low, high)``."""

    value: Decimal
    low: Decimal
    high: Decimal


def parse_number(text: str) -> SearchNumber:
    """Parse a decimal search value (``100``, ``-0.5``, ``1.00e2``); ValueError if not one.

    The range is ``value ± half a unit of its last significant digit``: the exponent of
    the literal, so trailing zeros after the point count and an exponent widens it.
    """
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} is not a number")
    value = Decimal(text)
    digits, exponent = value.as_tuple()[1:]
    assert isinstance(exponent, int)  # finite: the pattern admits no NaN or Infinity
    if len(digits) > _MAX_DIGITS or abs(exponent) > _MAX_EXPONENT:
        raise ValueError(f"{text!r} is out of the supported range")
    half = Decimal((0, (5,), exponent - 1))
    with localcontext() as context:
        context.prec = _PRECISION
        return SearchNumber(value, value - half, value + half)


def to_decimal(value: Any) -> Decimal | None:
    """A JSON number (int, float, Decimal or numeric string) as a finite Decimal, else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        # str() of a float is its shortest round-trip form: 0.1 stays 0.1.
        number = Decimal(str(value)) if isinstance(value, int | float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None


def number_bounds(node: Node) -> tuple[Decimal, Decimal] | None:
    """``(low, high)`` of a number, a Range or any value with a ``value``; None if none.

    An open end of a Range is ``±Infinity``.
    """
    value = node.value
    if not isinstance(value, dict):
        number = to_decimal(value)
        return None if number is None else (number, number)
    if node.type == "Range" or "low" in value or "high" in value:
        low = to_decimal((value.get("low") or {}).get("value"))
        high = to_decimal((value.get("high") or {}).get("value"))
        if low is None and high is None:
            return None
        return (NEG_INF if low is None else low), (POS_INF if high is None else high)
    number = to_decimal(value.get("value"))
    return None if number is None else (number, number)


def approximate(number: SearchNumber) -> tuple[Decimal, Decimal]:
    """The range ``ap`` accepts: the value ± 10 % ("the recommended value for the
    approximation"), never narrower than the value's own precision (so ``ap0`` still
    means about zero)."""
    v = number.value
    with localcontext() as context:
        context.prec = _PRECISION
        margin = abs(v) / 10
        return min(number.low, v - margin), max(number.high, v + margin)


def parse_search_number(raw: str, parameter: str = "number") -> tuple[str, SearchNumber]:
    """``[prefix]number`` -> (prefix, value); BadRequest naming the problem otherwise."""
    prefix, text = parse_prefix(raw)
    try:
        return prefix, parse_number(text)
    except ValueError:
        raise BadRequest(f"invalid {parameter} search value {raw!r}: expected "
                         "[prefix]number, e.g. 100, ge5.4 or 1.5e-3") from None


@dataclass(frozen=True, slots=True)
class NumberValue:
    """A number search value: its prefix and number (with its implicit range)."""

    prefix: str
    number: SearchNumber


class NumberType:
    """The ``number`` parameter type: table ``idx_number``."""

    name: str = "number"
    columns: tuple[tuple[str, str], ...] = (("low", "numeric"), ("high", "numeric"))
    modifiers: frozenset[str] = frozenset()

    def rows(self, p: int, nodes: list[Node], ctx: IndexContext) -> list[tuple[Any, ...]]:
        """One ``(p, low, high)`` row per distinct number or Range (numerics as text)."""
        out: list[tuple[Any, ...]] = []
        for node in nodes:
            if isinstance(node.value, str) and node.type not in _NUMBER_TYPES:
                continue  # e.g. doseString "first dose" where a number is searched
            bounds = number_bounds(node)
            if bounds is None:
                continue
            row = (p, str(bounds[0]), str(bounds[1]))
            if row not in out:
                out.append(row)
        return out

    def parse(self, p: int, modifier: str | None, raw: str, ctx: ParseContext) -> NumberValue:
        """``[prefix]number``."""
        refuse_modifier(self.name, modifier, self.modifiers)
        return NumberValue(*parse_search_number(raw))


#: The number parameter type.
NUMBER = NumberType()
