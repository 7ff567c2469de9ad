"""Composite search parameters (``idx_composite``): a token paired with a second value.

Every R4 composite but MolecularSequence's coordinates has two components, the first a
token. For each context node (an Observation, an ``Observation.component``, a
``useContext`` ...) one row is written per pair of first-component key and
second-component variant, so both halves of a match come from the same context node:

- ``h1``: ``h64(p, system or '', code)`` (for ``system|code`` and ``|code``) and
  ``h64(p, code)`` (for ``code``), per coding of the first component.
- second component, by its parameter type:

  - token: ``h2`` with the same two keys as ``h1``
  - quantity: ``low``/``high`` and ``h2`` = the unit, ``h64(p, 'unit', system, code)``,
    ``h64(p, 'unit', '', code)`` and ``h64(p, 'unit', '', unit)`` (NULL without a unit)
  - number: ``low``/``high``; date: ``dlow``/``dhigh`` (``[low, high)``, open ends
    infinite)
  - string: ``h2 = h64(p, 'string', normalize(s))`` - a whole-value, case- and
    accent-insensitive match (a hash cannot answer "starts with")
  - reference: ``h2 = h64(p, 'ref', 'Type/id' or url)`` and ``h64(p, 'ref-id', id)``
  - uri: ``h2 = h64(p, 'uri', value)``

A search value is ``first$second`` (``\\$`` is a literal dollar); prefixes work on
quantity, number and date second components as for those types. ``system|`` (a system
without a code) is not supported in either component. Three-component composites
(MolecularSequence ``*-coordinate``) are not supported: no rows, and BadRequest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_server.errors import BadRequest
from fhir_server.search.base import (
    IndexContext,
    Node,
    ParseContext,
    normalize,
    refuse_modifier,
    split_escaped,
    unescape,
)
from fhir_server.search.date import DateValue, bound_text, node_range, parse_date_value
from fhir_server.search.hashing import h64
from fhir_server.search.number import NumberValue, number_bounds, parse_search_number
from fhir_server.search.quantity import quantity_row, split_quantity
from fhir_server.search.reference import parse_reference
from fhir_server.search.token import codings

#: The columns after ``p``: h1, h2, low, high, dlow, dhigh.
CompositeRow = tuple[int, int, int | None, str | None, str | None, str | None, str | None]
#: One component: its parameter type and an extractor of its Nodes from a context value.
ComponentSpec = tuple[str, Callable[[Any], list[Node]]]
#: The second component's part of a row: (h2, low, high, dlow, dhigh).
_Second = tuple[int | None, str | None, str | None, str | None, str | None]
_HASHED = frozenset({"token", "string", "reference", "uri"})


def token_keys(p: int, nodes: Sequence[Node]) -> list[int]:
    """``h64(p, system or '', code)`` and ``h64(p, code)`` of every coding in ``nodes``."""
    keys: list[int] = []
    for node in nodes:
        for system, code, _ in codings(node):
            if code is not None:
                keys.extend((h64(p, system or "", code), h64(p, code)))
    return list(dict.fromkeys(keys))


def _reference_keys(p: int, value: str, ctx: IndexContext) -> list[int]:
    target = parse_reference(value, ctx.bases)
    if target is None:
        return []
    if target.url is not None:
        return [h64(p, "ref", target.url)]
    return [h64(p, "ref", f"{target.type}/{target.id}"), h64(p, "ref-id", str(target.id))]


def _seconds(p: int, kind: str, nodes: Sequence[Node], ctx: IndexContext) -> list[_Second]:
    out: list[_Second] = []
    for node in nodes:
        if kind == "token":
            out.extend((k, None, None, None, None) for k in token_keys(p, [node]))
        elif kind == "quantity":
            found = quantity_row(node.value)
            if found is not None:
                system, code, unit, low, high = found
                units: list[int | None] = [h64(p, "unit", "", x) for x in (code, unit) if x]
                if system and code:
                    units.append(h64(p, "unit", system, code))
                out.extend((u, str(low), str(high), None, None) for u in units or [None])
        elif kind == "number":
            bounds = number_bounds(node)
            if bounds is not None:
                out.append((None, str(bounds[0]), str(bounds[1]), None, None))
        elif kind == "date":
            span = node_range(node)
            if span is not None:
                out.append((None, None, None, bound_text(span[0], high=False),
                            bound_text(span[1], high=True)))
        elif kind == "string" and isinstance(node.value, str) and node.value:
            out.append((h64(p, "string", normalize(node.value)), None, None, None, None))
        elif kind == "reference" and isinstance(node.value, dict):
            ref = node.value.get("reference")
            if isinstance(ref, str):
                out.extend((k, None, None, None, None) for k in _reference_keys(p, ref, ctx))
        elif kind == "uri" and isinstance(node.value, str) and node.value:
            out.append((h64(p, "uri", node.value), None, None, None, None))
    return out


def composite_rows(p: int, context_nodes: Sequence[Node], components: Sequence[ComponentSpec],
                   ctx: IndexContext) -> list[tuple[Any, ...]]:
    """The idx_composite rows of one composite parameter of one resource.

    ``context_nodes`` are the nodes of the composite's own expression; each component is
    its parameter type and a function from a context node's *value* to that component's
    nodes (bind the resource in it for ``%resource`` expressions). Composites that are not
    token + one other component have no rows.
    """
    if len(components) != 2 or components[0][0] != "token":
        return []
    (_, first), (kind, second) = components
    out: list[tuple[Any, ...]] = []
    for node in context_nodes:
        h1s = token_keys(p, first(node.value))
        if not h1s:
            continue
        seconds = _seconds(p, kind, second(node.value), ctx)
        out.extend((p, h1, *rest) for h1 in h1s for rest in seconds)
    return list(dict.fromkeys(out))


def _token_key(p: int, raw: str, what: str) -> int:
    parts = split_escaped(raw, "|")
    values = [unescape(x) for x in parts]
    if len(parts) > 2 or not values[-1]:
        raise BadRequest(f"composite {what} {raw!r}: expected code, system|code or |code")
    return h64(p, values[0], values[1]) if len(parts) == 2 else h64(p, values[0])


def _hashed_key(p: int, kind: str, raw: str, ctx: ParseContext) -> int:
    if kind == "token":
        return _token_key(p, raw, "second value")
    value = unescape(raw)
    if not value:
        raise BadRequest("composite: empty second value")
    if kind == "string":
        return h64(p, "string", normalize(value))
    if kind == "uri":
        return h64(p, "uri", value)
    if "/" not in value and ":" not in value:  # a bare id: any type (rows carry ref-id)
        return h64(p, "ref-id", value)
    target = parse_reference(value, ctx.bases)
    if target is None:
        raise BadRequest(f"composite: {value!r} is not a reference")
    if target.url is not None:
        return h64(p, "ref", target.url)
    return h64(p, "ref", f"{target.type}/{target.id}")


@dataclass(frozen=True, slots=True)
class CompositeValue:
    """A composite search value ``first$second``: the first component's key ``h1`` and
    the second one's condition: a hash ``h2`` (token, string, reference, uri; the unit of
    a quantity), a prefixed ``number`` (number, quantity) or a ``date``."""

    h1: int
    h2: int | None = None
    number: NumberValue | None = None
    date: DateValue | None = None
    #: a quantity second component with a unit and no number
    unit_only: bool = False

    @property
    def paired(self) -> bool:
        """Whether the value is a plain (h1, h2) pair of hashes."""
        return self.number is None and self.date is None and not self.unit_only


def _ordered(p: int, kind: str, h1: int, raw: str, ctx: ParseContext) -> CompositeValue:
    """The value of an ordered second component (quantity, number, date)."""
    if kind == "number":
        return CompositeValue(h1, number=NumberValue(
            *parse_search_number(unescape(raw), "composite number")))
    if kind == "date":
        return CompositeValue(h1, date=parse_date_value(unescape(raw), ctx.now,
                                                         "composite date"))
    number_text, system, code = split_quantity(raw)
    number = None
    if number_text.strip():
        number = NumberValue(*parse_search_number(unescape(number_text),
                                                  "composite quantity"))
    if system is not None and code is None:
        raise BadRequest(f"composite quantity {raw!r}: a unit system needs a code")
    unit = h64(p, "unit", system or "", code) if code is not None else None
    if number is None and unit is None:
        raise BadRequest(f"composite quantity {raw!r}: no number or unit")
    return CompositeValue(h1, unit, number, unit_only=number is None)


class CompositeType:
    """The ``composite`` parameter type (``idx_composite``)."""

    name = "composite"
    columns: tuple[tuple[str, str], ...] = (
        ("h1", "bigint"), ("h2", "bigint"), ("low", "numeric"), ("high", "numeric"),
        ("dlow", "timestamptz"), ("dhigh", "timestamptz"))
    modifiers: frozenset[str] = frozenset()

    def rows(self, p: int, nodes: list[Node], ctx: IndexContext) -> list[tuple[Any, ...]]:
        """Not usable: rows depend on the components, see :func:`composite_rows`."""
        raise TypeError("composite rows need the components' extractors: "
                        "call fhir_server.search.composite.composite_rows(p, nodes, "
                        "components, ctx) instead of COMPOSITE.rows")

    def parse(self, p: int, modifier: str | None, raw: str,
              ctx: ParseContext) -> CompositeValue:
        """``first$second``; ``ctx.targets`` holds the component types in order."""
        refuse_modifier(self.name, modifier, self.modifiers)
        kinds = ctx.targets
        if len(kinds) != 2 or kinds[0] != "token":
            raise BadRequest("this composite parameter (not token + one value) is not "
                             "supported for search")
        kind = kinds[1]
        parts = split_escaped(raw, "$")
        if len(parts) != 2:
            raise BadRequest(f"composite value {raw!r}: expected value1$value2 "
                             "(escape a literal $ as \\$)")
        h1 = _token_key(p, parts[0], "first value")
        if kind in _HASHED:
            return CompositeValue(h1, _hashed_key(p, kind, parts[1], ctx))
        if kind in ("quantity", "number", "date"):
            return _ordered(p, kind, h1, parts[1], ctx)
        raise BadRequest(f"composite components of type {kind} are not supported")


#: The composite parameter type.
COMPOSITE = CompositeType()
