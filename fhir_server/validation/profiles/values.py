"""Values of an instance: fixed[x] and pattern[x] matching, and simple FHIRPath paths.

Fixed means equal in every part (FHIR's rule: no more, no less); a pattern is contained:
every property it has must be in the value with a matching value, and every item of a
pattern array must match some item of the value's array.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    return Decimal(str(value))


def equal(value: Any, fixed: Any) -> bool:
    """Whether ``value`` is exactly ``fixed`` (numbers compared as decimals: 1.0 == 1)."""
    a, b = _number(value), _number(fixed)
    if a is not None and b is not None:
        return a == b
    if isinstance(fixed, dict):
        return isinstance(value, dict) and value.keys() == fixed.keys() and all(
            equal(value[k], v) for k, v in fixed.items())
    if isinstance(fixed, list):
        return isinstance(value, list) and len(value) == len(fixed) and all(
            equal(v, f) for v, f in zip(value, fixed, strict=True))
    return bool(value == fixed) and type(value) is type(fixed)


def contains(value: Any, pattern: Any) -> bool:
    """Whether ``value`` matches ``pattern`` (``pattern[x]`` semantics)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and contains(value[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(contains(item, p) for item in items) for p in pattern)
    return equal(value, pattern)


def _step(value: Any, name: str) -> Iterator[Any]:
    if not isinstance(value, dict):
        return
    found = value.get(name)
    if found is None:
        # a choice named without its type (``value`` for ``valueQuantity``)
        for key, item in value.items():
            if key.startswith(name) and key[len(name):len(name) + 1].isupper():
                found = item
                break
    if isinstance(found, list):
        yield from found
    elif found is not None:
        yield found


def at_path(value: Any, path: str) -> list[Any]:
    """The values at a discriminator path (``coding.code``; ``$this`` is ``value``).

    Only plain dotted names are followed; functions (``resolve()``, ``extension(..)``,
    ``ofType(..)``) give nothing, so a discriminator using them never matches.
    """
    current = [value]
    if path in ("$this", ""):
        return current
    for name in path.removeprefix("$this.").split("."):
        if not name.isidentifier():
            return []
        current = [item for v in current for item in _step(v, name)]
    return current
