"""Quantity search parameters (``idx_quantity``): a number with an optional unit.

Rows come from Quantity and its profiles (Age, Count, Distance, Duration,
SimpleQuantity, MoneyQuantity), from Money (the currency is the code, with system
``urn:iso:std:iso:4217``) and from Range (low..high, open ends ``±Infinity``). A target
Quantity's ``comparator`` is honoured: ``<5`` is stored as ``(-Infinity, 5]``.

Search values are ``[prefix]number``, ``[prefix]number|system|code`` and
``[prefix]number||code`` (R4 search.html, "quantity"); the number is matched exactly as
for number parameters (see :mod:`fhir_server.search.number`). Without a system the code
matches either ``code`` or the human ``unit``; with one, ``system`` and ``code`` must
both match. Units are compared literally: no UCUM conversion (``1000 mg`` is not found
by ``1|http://unitsofmeasure.org|g``).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import (
    Fragment,
    Node,
    SearchContext,
    any_value,
    range_sort_key,
    split_escaped,
    unescape,
)
from fhir_server.search.number import (
    NEG_INF,
    POS_INF,
    number_condition,
    parse_search_number,
    to_decimal,
)

#: The system of Money's currency codes.
CURRENCY_SYSTEM = "urn:iso:std:iso:4217"

#: ``(system, code, unit, low, high)`` of one stored quantity.
QuantityRow = tuple[str | None, str | None, str | None, Decimal, Decimal]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def quantity_row(value: Any) -> QuantityRow | None:
    """``(system, code, unit, low, high)`` of a Quantity, Money or Range; None if no value."""
    if not isinstance(value, dict):
        return None
    if "low" in value or "high" in value:
        return _range_row(value)
    number = to_decimal(value.get("value"))
    if number is None:
        return None
    if "currency" in value:
        return CURRENCY_SYSTEM, _text(value.get("currency")), None, number, number
    low, high = number, number
    comparator = value.get("comparator")
    # The true value lies beyond the stated one: keep it findable by lt/gt, not by eq.
    if comparator in ("<", "<="):
        low = NEG_INF
    elif comparator in (">", ">="):
        high = POS_INF
    return (_text(value.get("system")), _text(value.get("code")), _text(value.get("unit")),
            low, high)


def _range_row(value: dict[str, Any]) -> QuantityRow | None:
    low_q = value.get("low") if isinstance(value.get("low"), dict) else {}
    high_q = value.get("high") if isinstance(value.get("high"), dict) else {}
    assert isinstance(low_q, dict) and isinstance(high_q, dict)
    low, high = to_decimal(low_q.get("value")), to_decimal(high_q.get("value"))
    if low is None and high is None:
        return None
    # Both ends of a Range carry the same unit; take it from whichever is there.
    unit_of = low_q if low is not None else high_q
    return (_text(unit_of.get("system")), _text(unit_of.get("code")),
            _text(unit_of.get("unit")), NEG_INF if low is None else low,
            POS_INF if high is None else high)


def split_quantity(raw: str) -> tuple[str, str | None, str | None]:
    """``[prefix]number|system|code`` -> (``[prefix]number``, system, code).

    System and code are unescaped and None when empty; BadRequest unless the value has
    one part or three.
    """
    parts = split_escaped(raw, "|")
    if len(parts) == 1:
        return parts[0], None, None
    if len(parts) != 3:
        raise BadRequest(f"invalid quantity search value {raw!r}: expected "
                         "[prefix]number or [prefix]number|system|code")
    number, system, code = parts
    return number, unescape(system) or None, unescape(code) or None


def quantity_condition(raw: str, low: sql.Composable, high: sql.Composable,
                       system: sql.Composable, code: sql.Composable,
                       unit: sql.Composable) -> Fragment:
    """The condition for one quantity search value over the given columns.

    ``unit`` may be the same expression as ``code`` where no separate unit is stored.
    """
    number_text, want_system, want_code = split_quantity(raw)
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if number_text.strip():
        prefix, number = parse_search_number(number_text, "quantity")
        cond, cond_params = number_condition(prefix, number, low, high)
        parts.append(cond)
        params.extend(cond_params)
    elif want_system is None and want_code is None:
        raise BadRequest(f"invalid quantity search value {raw!r}: no number")
    # An empty number with a unit (`||mg`) finds every value in that unit, as HAPI does.
    if want_system is not None:
        parts.append(sql.SQL("{} = %s").format(system))
        params.append(want_system)
    if want_code is not None:
        if want_system is not None:
            parts.append(sql.SQL("{} = %s").format(code))
            params.append(want_code)
        else:
            parts.append(sql.SQL("({} = %s OR {} = %s)").format(code, unit))
            params.extend([want_code, want_code])
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts)), params


class QuantityIndex:
    """The ``quantity`` parameter type: table ``idx_quantity``."""

    name: str = "quantity"
    table: str = "idx_quantity"
    columns: tuple[tuple[str, str], ...] = (
        ("system", "text"), ("code", "text"), ("unit", "text"), ("low", "numeric"),
        ("high", "numeric"))
    modifiers: frozenset[str] = frozenset()

    def rows(self, p: int, nodes: Sequence[Node], ctx: SearchContext) -> list[tuple[Any, ...]]:
        """One ``(p, system, code, unit, low, high)`` row per distinct quantity."""
        out: list[tuple[Any, ...]] = []
        for node in nodes:
            found = quantity_row(node.value)
            if found is None:
                continue
            system, code, unit, low, high = found
            row = (p, system, code, unit, str(low), str(high))
            if row not in out:
                out.append(row)
        return out

    def predicate(self, p: int, modifier: str | None, values: Sequence[str],
                  alias: sql.Identifier, ctx: SearchContext) -> Fragment:
        """Rows of ``alias`` matching any of ``values`` (``[prefix]number|system|code``)."""
        cols = {c: sql.SQL("{}.{}").format(alias, sql.Identifier(c))
                for c in ("low", "high", "system", "code", "unit")}
        return any_value(p, alias, (quantity_condition(raw, **cols) for raw in values),
                         "quantity", modifier)

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """Smallest low ascending, largest high descending (units are not compared)."""
        return range_sort_key(alias, descending)


#: The quantity index type.
QUANTITY = QuantityIndex()
