"""The contract of the per-type search modules: index values and search values.

Each parameter-type module (``token``, ``string``, ``date``, ``number``, ``quantity``,
``reference``, ``uri``, ``composite``) exposes one object satisfying :class:`ParamType`:
``rows`` turns the values a SearchParameter's expression found in a resource into the
rows of its index (written in the same transaction as the resource), and ``parse``
turns one search value (one of a comma-separated OR list) into a typed value. The
type owns its modifiers: ``parse`` is the only place that accepts or refuses one. How
typed values become SQL is the storage's business (``fhir_server.storage.sql``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from fhir_server.errors import BadRequest


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
class IndexContext:
    """What index rows may depend on besides the values: the server's own base URLs.

    A reference to any of ``bases`` (``https://h.example/fhir/Patient/1``) is stored as
    the local ``Patient/1``, so searches need not know which base a client wrote.
    """

    bases: tuple[str, ...] = ()
    #: the resource's contained resources: (id, resourceType) each, so that a ``#id``
    #: reference is indexed with the type it points to
    contained: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ParseContext:
    """What parsing a search value may need: base URLs, the clock, terminology, targets."""

    #: this server's FHIR bases (references to them are local), without trailing slash
    bases: tuple[str, ...] = ()
    now: datetime | None = None
    #: ``:in``/``:not-in``: value set URL -> set of (system, code); None if unknown.
    expand_valueset: Any = None
    #: token ``:above``/``:below``: (system, code, modifier) -> the codes above or below
    #: it (itself included), or None when the hierarchy of ``system`` is not held
    subsumption: Any = None
    #: reference parameters: the resource types the parameter may point to;
    #: composite parameters: the components' parameter types, in order.
    targets: tuple[str, ...] = field(default_factory=tuple)
    #: token parameters over ContactPoints: values are matched case-insensitively
    fold_case: bool = False


class ParamType(Protocol):
    """One search parameter type: its index rows and its search values."""

    #: parameter type code: token, string, date, number, quantity, reference, uri, composite
    name: str
    #: the index table's columns after ``rid`` and ``p``, in order, as (name, SQL type)
    columns: tuple[tuple[str, str], ...]
    #: modifiers this type understands (``:missing`` is understood by every type)
    modifiers: frozenset[str]

    def rows(self, p: int, nodes: list[Node], ctx: IndexContext) -> list[tuple[Any, ...]]:
        """Rows for the values of one parameter of one resource: ``(p, *columns)`` each."""
        ...

    def parse(self, p: int, modifier: str | None, raw: str, ctx: ParseContext) -> Any:
        """One search value as a typed value for the index rows of parameter ``p``.

        ``raw`` is one value of the OR list (``\\,`` already unescaped; ``\\|``, ``\\$``
        and ``\\\\`` still escaped). BadRequest for a malformed value or a modifier the
        type does not take (``modifier`` is never ``missing``).
        """
        ...


def refuse_modifier(kind: str, modifier: str | None, allowed: frozenset[str]) -> None:
    """BadRequest for a modifier ``kind`` parameters do not take."""
    if modifier is not None and modifier not in allowed:
        hint = f" (use {', '.join(':' + m for m in sorted(allowed))})" if allowed else ""
        raise BadRequest(f"modifier :{modifier} is not supported on {kind} parameters{hint}")


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

