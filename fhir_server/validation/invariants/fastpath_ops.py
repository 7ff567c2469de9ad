"""The closures compiled FHIRPath is made of (:mod:`fastpath` builds them).

Each takes the focus collection and the :class:`Env` and returns a collection; values
are the parsed JSON itself (dicts, strings, numbers, booleans) and :data:`NO_VALUE` for
a primitive with only extensions. Anything not decided here raises :class:`Defer`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

#: focus collection, environment -> result collection
Fn = Callable[[list[Any], "Env"], list[Any]]
DATE_TYPES = frozenset({"date", "dateTime", "instant"})


class Unsupported(Exception):
    """The expression uses something the compiler does not handle."""


class Defer(Exception):
    """A value this compiler does not decide: evaluate with fhirpathpy."""


class NoValue:
    """A primitive that has only extensions (``"_birthDate": {...}``): it exists but
    has no value."""

    __slots__ = ()


NO_VALUE = NoValue()


class Env:
    """What an evaluation sees besides its focus."""

    __slots__ = ("resource", "root", "this")

    def __init__(self, resource: Any, root: Any) -> None:
        self.resource = resource
        self.root = root
        self.this: Any = None


def boolean(items: list[Any]) -> bool | None:
    """FHIRPath singleton evaluation of a collection as a boolean."""
    if not items:
        return None
    if len(items) > 1:
        raise Defer("several items where one boolean is expected")
    item = items[0]
    return item if isinstance(item, bool) else True


def op_constant(value: list[Any]) -> Fn:
    return lambda focus, env: value


def op_focus(focus: list[Any], env: Env) -> list[Any]:
    return focus


def op_this(focus: list[Any], env: Env) -> list[Any]:
    return [env.this] if env.this is not None else focus


def op_resource(focus: list[Any], env: Env) -> list[Any]:
    return [env.resource]


def op_root(focus: list[Any], env: Env) -> list[Any]:
    return [env.root]


def op_navigate(base: Fn, names: tuple[str, ...], primitive: bool) -> Fn:
    many = len(names) > 4  # value[x] of Extension: some 50 names, one or two keys
    wanted = frozenset(names) | frozenset("_" + n for n in names)

    def run(focus: list[Any], env: Env) -> list[Any]:
        out: list[Any] = []
        for item in base(focus, env):
            if not isinstance(item, dict):
                raise Defer("navigation from a primitive")
            present = dict.fromkeys(k.lstrip("_") for k in item if k in wanted) \
                if many else names
            for name in present:
                value = item.get(name)
                extra = item.get("_" + name) if primitive else None
                if value is None and extra is None:
                    continue
                if isinstance(value, list) or isinstance(extra, list):
                    values = value if isinstance(value, list) else []
                    extras = extra if isinstance(extra, list) else []
                    for index in range(max(len(values), len(extras))):
                        one = values[index] if index < len(values) else None
                        if one is not None:
                            out.append(one)
                        elif index < len(extras) and extras[index] is not None:
                            out.append(NO_VALUE)
                else:
                    out.append(value if value is not None else NO_VALUE)
        return out
    return run


def op_logic(op: str, left: Fn, right: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        a = boolean(left(focus, env))
        if (op == "and" and a is False) or (op == "or" and a is True):
            return [a]
        if op == "implies" and a is False:
            return [True]
        b = boolean(right(focus, env))
        result: bool | None
        if op == "and":
            result = False if b is False else (True if a and b else None)
        elif op == "or":
            result = True if b is True else (False if a is False and b is False else None)
        elif op == "xor":
            result = None if a is None or b is None else a != b
        else:  # implies: a is True or None here
            result = True if b is True else (b if a is True else None)
        return [] if result is None else [result]
    return run


def op_compare(op: str, left: Fn, right: Fn, left_type: str | None,
             right_type: str | None) -> Fn:
    if op not in ("=", "!=", "<", "<=", ">", ">=", "in"):
        raise Unsupported(op)
    dates = left_type in DATE_TYPES or right_type in DATE_TYPES

    def run(focus: list[Any], env: Env) -> list[Any]:
        a, b = left(focus, env), right(focus, env)
        if op == "in":
            if not a:
                return []
            if len(a) > 1:
                raise Defer("in on several items")
            return [any(op_equal(a[0], item, dates) for item in b)]
        if not a or not b:
            return []
        if op in ("=", "!="):
            if len(a) != len(b):
                return [op == "!="]
            same = all(op_equal(x, y, dates) for x, y in zip(a, b, strict=True))
            return [same == (op == "=")]
        if len(a) > 1 or len(b) > 1:
            raise Defer("comparison of several items")
        x, y = op_ordered(a[0], b[0], dates)
        return [{"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]]
    return run


def op_equal(a: Any, b: Any, dates: bool) -> bool:
    if isinstance(a, (dict, list, NoValue)) or isinstance(b, (dict, list, NoValue)):
        raise Defer("equality of complex values")
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) != isinstance(b, str):
        raise Defer("equality of a string and a number")
    if dates and isinstance(a, str) and isinstance(b, str) and len(a) != len(b):
        raise Defer("dates of different precision")
    return bool(a == b)


def op_ordered(a: Any, b: Any, dates: bool) -> tuple[Any, Any]:
    """Two values made comparable with ``<``, or Defer."""
    if isinstance(a, bool) or isinstance(b, bool):
        raise Defer("ordering booleans")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a, b
    if isinstance(a, dict) and isinstance(b, dict):
        return op_quantities(a, b)
    if not (isinstance(a, str) and isinstance(b, str)):
        raise Defer("ordering of other values")
    if not dates:
        return a, b
    if "T" not in a and "T" not in b and len(a) == len(b):
        return a, b  # dates of one precision order as text
    if "T" in a and "T" in b and len(a) >= 19 and len(b) >= 19:
        x, y = op_instant(a), op_instant(b)
        if x is not None and y is not None:
            return x, y
    raise Defer("dates of different precision or without a time zone")


def op_quantities(a: dict[str, Any], b: dict[str, Any]) -> tuple[Any, Any]:
    """Two Quantities of one unit (rng-2's ``low <= high``) order by value."""
    x, y = a.get("value"), b.get("value")
    unit_a = (a.get("system"), a.get("code")) if a.get("code") else (None, a.get("unit"))
    unit_b = (b.get("system"), b.get("code")) if b.get("code") else (None, b.get("unit"))
    if isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, (int, float)) or \
            not isinstance(y, (int, float)) or unit_a != unit_b or a.get("comparator") or \
            b.get("comparator"):
        raise Defer("quantities of different units")
    return x, y


def op_instant(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def op_union(left: Fn, right: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        out: list[Any] = []
        for item in (*left(focus, env), *right(focus, env)):
            if isinstance(item, (dict, list, NoValue)):
                raise Defer("union of complex values")
            if not any(type(item) is type(seen) and item == seen for seen in out):
                out.append(item)
        return out
    return run


def op_plus(left: Fn, right: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        a, b = left(focus, env), right(focus, env)
        if not a or not b:
            return []
        if len(a) > 1 or len(b) > 1:
            raise Defer("+ on several items")
        return [a[0] + b[0]]
    return run


def op_not(base: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        value = boolean(base(focus, env))
        return [] if value is None else [not value]
    return run


def op_has_value(base: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        items = base(focus, env)
        return [len(items) == 1 and not isinstance(items[0], (dict, list, NoValue))]
    return run


def op_criteria(criteria: Fn, item: Any, env: Env) -> bool | None:
    saved = env.this
    env.this = item
    try:
        return boolean(criteria([item], env))
    finally:
        env.this = saved


def op_where(base: Fn, criteria: Fn) -> Fn:
    return lambda focus, env: [item for item in base(focus, env)
                               if op_criteria(criteria, item, env) is True]


def op_all(base: Fn, criteria: Fn) -> Fn:
    return lambda focus, env: [all(op_criteria(criteria, item, env) is True
                                   for item in base(focus, env))]


def op_exists_where(base: Fn, criteria: Fn) -> Fn:
    return lambda focus, env: [any(op_criteria(criteria, item, env) is True
                                   for item in base(focus, env))]


def op_intersect(base: Fn, argument: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        other = argument([env.this] if env.this is not None else focus, env)
        out: list[Any] = []
        for item in base(focus, env):
            if any(item == candidate for candidate in other) and item not in out:
                out.append(item)
        return out
    return run


def op_string_function(name: str, base: Fn, argument: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        items = base(focus, env)
        if not items:
            return []
        args = argument(focus, env)
        if len(items) > 1 or len(args) != 1 or not isinstance(items[0], str):
            raise Defer(f"{name}() on other than one string")
        text, arg = items[0], args[0]
        if name == "substring":
            if not isinstance(arg, int) or isinstance(arg, bool):
                raise Defer("substring() start")
            return [text[arg:]] if 0 <= arg < len(text) else []
        if not isinstance(arg, str):
            raise Defer(f"{name}() argument")
        return [text.startswith(arg) if name == "startsWith" else arg in text]
    return run
