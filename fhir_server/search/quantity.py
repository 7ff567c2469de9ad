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

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fhir_server.errors import BadRequest
from fhir_server.search.base import (
    IndexContext,
    Node,
    ParseContext,
    refuse_modifier,
    split_escaped,
    unescape,
)
from fhir_server.search.number import (
    NEG_INF,
    POS_INF,
    SearchNumber,
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


@dataclass(frozen=True, slots=True)
class QuantityValue:
    """A quantity search value: an optional prefixed number and an optional unit.

    Without ``system`` the ``code`` matches either the stored code or the human unit;
    with one both must match. ``||mg`` (no number) finds every value in that unit, as
    HAPI does.
    """

    prefix: str | None
    number: SearchNumber | None
    system: str | None
    code: str | None


def parse_quantity(raw: str, what: str = "quantity") -> QuantityValue:
    """``[prefix]number|system|code`` as a QuantityValue; BadRequest otherwise."""
    number_text, system, code = split_quantity(raw)
    if number_text.strip():
        prefix, number = parse_search_number(unescape(number_text), what)
        return QuantityValue(prefix, number, system, code)
    if system is None and code is None:
        raise BadRequest(f"invalid {what} search value {raw!r}: no number")
    return QuantityValue(None, None, system, code)


class QuantityType:
    """The ``quantity`` parameter type: table ``idx_quantity``."""

    name: str = "quantity"
    columns: tuple[tuple[str, str], ...] = (
        ("system", "text"), ("code", "text"), ("unit", "text"), ("low", "numeric"),
        ("high", "numeric"))
    modifiers: frozenset[str] = frozenset()

    def rows(self, p: int, nodes: list[Node], ctx: IndexContext) -> list[tuple[Any, ...]]:
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

    def parse(self, p: int, modifier: str | None, raw: str,
              ctx: ParseContext) -> QuantityValue:
        """``[prefix]number``, ``[prefix]number|system|code`` or ``[prefix]number||code``."""
        refuse_modifier(self.name, modifier, self.modifiers)
        return parse_quantity(raw)


#: The quantity parameter type.
QUANTITY = QuantityType()
