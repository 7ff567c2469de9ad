"""A typed compiler from FHIRPath (fhirpathpy's parse tree) to Python closures.

Most R4 invariants are small boolean expressions over a few child elements
(``start.hasValue().not() or end.hasValue().not() or (start <= end)``). fhirpathpy
evaluates one in 50-150 us; compiled here into closures over the parsed JSON, typed
from the definitions, one takes a few microseconds. Only a subset is compiled: paths,
``and``/``or``/``xor``/``implies``, ``=``/``!=``, ``in``, comparisons, ``|``, ``+`` on
counts, literals, ``$this``, ``%resource``/``%rootResource``/``%ucum``, and the
functions of :data:`FUNCTIONS`. An expression outside it raises :class:`Unsupported` at
compile time; a value the closures do not decide (a date comparison of mixed
precision, a function applied to several items...) raises :class:`Defer` while
evaluating. Either way the caller evaluates the expression with fhirpathpy instead, so
the subset only ever changes speed (a test checks both agree on every official example).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fhir_server.definitions import Definitions

#: focus collection, environment -> result collection
Fn = Callable[[list[Any], "Env"], list[Any]]
Compiled = tuple[Fn, str | None]
FUNCTIONS = frozenset({"exists", "empty", "not", "hasValue", "count", "first", "where",
                       "all", "startsWith", "substring", "trace", "contains", "intersect"})
DATE_TYPES = frozenset({"date", "dateTime", "instant"})
NUMBER_TYPES = frozenset({"decimal", "integer", "positiveInt", "unsignedInt"})


class Unsupported(Exception):
    """The expression uses something this compiler does not handle."""


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


class Compiler:
    """Compiles expressions for one set of definitions."""

    def __init__(self, definitions: Definitions) -> None:
        self._defs = definitions

    def compile(self, ast: dict[str, Any], path: str, resource_type: str) -> Fn:
        """``ast`` (fhirpathpy's parse tree) evaluated on a node of type/path ``path``;
        ``resource_type`` types ``%resource`` (``Resource`` when unknown)."""
        self._resource_type = resource_type
        fn, _ = self._expr(ast["children"][0], path, path)
        return fn

    # -- expressions ------------------------------------------------------------------

    def _expr(self, node: dict[str, Any], path: str | None, this: str | None) -> Compiled:
        kind = node.get("type")
        children = node.get("children", [])
        ops = node.get("terminalNodeText", [])
        if kind == "TermExpression":
            return self._term(children[0], path, this)
        if kind == "InvocationExpression":
            base, base_path = self._expr(children[0], path, this)
            return self._invoke(base, base_path, children[1], this)
        if kind in ("AndExpression", "OrExpression", "ImpliesExpression"):
            left, _ = self._expr(children[0], path, this)
            right, _ = self._expr(children[1], path, this)
            return _logic(ops[0], left, right), "boolean"
        if kind in ("EqualityExpression", "InequalityExpression", "MembershipExpression"):
            left, left_type = self._expr(children[0], path, this)
            right, right_type = self._expr(children[1], path, this)
            return _compare(ops[0], left, right, left_type, right_type), "boolean"
        if kind == "UnionExpression":
            left, left_type = self._expr(children[0], path, this)
            right, right_type = self._expr(children[1], path, this)
            return _union(left, right), left_type if left_type == right_type else None
        if kind == "AdditiveExpression" and ops == ["+"]:
            left, left_type = self._expr(children[0], path, this)
            right, right_type = self._expr(children[1], path, this)
            if left_type != "integer" or right_type != "integer":
                raise Unsupported("+ on other than integers")
            return _plus(left, right), "integer"
        raise Unsupported(str(kind))

    def _term(self, node: dict[str, Any], path: str | None, this: str | None) -> Compiled:
        kind = node.get("type")
        children = node.get("children", [])
        if kind == "ParenthesizedTerm":
            return self._expr(children[0], path, this)
        if kind == "LiteralTerm":
            return _literal(children[0])
        if kind == "ExternalConstantTerm":
            name = _identifier(children[0]["children"][0])
            if name == "ucum":
                return _constant(["http://unitsofmeasure.org"]), "uri"
            if name == "resource":
                return _resource, self._resource_type
            if name == "rootResource":
                return _root, "DomainResource"
            raise Unsupported(f"%{name}")
        if kind == "InvocationTerm":
            return self._invoke(_focus, path, children[0], this)
        raise Unsupported(str(kind))

    def _invoke(self, base: Fn, path: str | None, node: dict[str, Any],
                this: str | None) -> Compiled:
        kind = node.get("type")
        children = node.get("children", [])
        if kind == "MemberInvocation":
            return self._member(base, path, _identifier(children[0]))
        if kind == "ThisInvocation":
            return _this, this
        if kind == "FunctionInvocation":
            functn = children[0]
            name = _identifier(functn["children"][0])
            params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
            return self._function(base, path, name, params)
        raise Unsupported(str(kind))

    # -- navigation -------------------------------------------------------------------

    def _member(self, base: Fn, path: str | None, name: str) -> Compiled:
        if path is None or path in NUMBER_TYPES or path[:1].islower():
            raise Unsupported(f"navigation from {path}")
        info = self._defs.children(path).get(name) or \
            self._defs.children(path).get(name + "[x]")
        if info is None:
            if name == path.split(".")[0]:
                return base, path  # a leading type name (Appointment.status)
            raise Unsupported(f"{path}.{name}")
        names = info.json_names()
        if info.is_backbone:
            child: str | None = self._defs.structure_path(info.path)
        elif len(info.types) == 1:
            child = info.types[0]
            if child == "Resource":
                child = "DomainResource"  # contained, entry.resource: any resource
        else:
            child = None  # a choice of several types
        primitive = child is not None and child in self._defs.primitive_types
        return _navigate(base, names, primitive), child

    # -- functions --------------------------------------------------------------------

    def _function(self, base: Fn, path: str | None, name: str,
                  params: list[dict[str, Any]]) -> Compiled:
        if name not in FUNCTIONS:
            raise Unsupported(f"{name}()")
        if name == "trace":
            return base, path
        if name in ("where", "all", "exists") and params:
            criteria, _ = self._expr(params[0], path, path)
            if name == "where":
                return _where(base, criteria), path
            return _all(base, criteria) if name == "all" else _exists_where(base, criteria), \
                "boolean"
        if params and name not in ("startsWith", "substring", "contains", "intersect"):
            raise Unsupported(f"{name}() with arguments")
        simple: dict[str, Compiled] = {
            "exists": (lambda f, e: [bool(base(f, e))], "boolean"),
            "empty": (lambda f, e: [not base(f, e)], "boolean"),
            "count": (lambda f, e: [len(base(f, e))], "integer"),
            "first": (lambda f, e: base(f, e)[:1], path),
            "not": (_not(base), "boolean"),
            "hasValue": (_has_value(base), "boolean"),
        }
        if name in simple:
            return simple[name]
        argument, _ = self._expr(params[0], path, path) if params else (_focus, None)
        if name == "intersect":
            return _intersect(base, argument), path
        if path not in ("string", "code", "uri", "id", "markdown", "url", "canonical"):
            raise Unsupported(f"{name}() on {path}")
        return _string_function(name, base, argument), "boolean" if name != "substring" \
            else "string"


def _identifier(node: dict[str, Any]) -> str:
    return str(node.get("text", "")).strip("`")


def _literal(node: dict[str, Any]) -> Compiled:
    kind = node.get("type")
    text = str(node.get("text", ""))
    if kind == "StringLiteral":
        body = text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
        if "\\" in body:
            raise Unsupported("escapes in a string literal")
        return _constant([body]), "string"
    if kind == "BooleanLiteral":
        return _constant([text == "true"]), "boolean"
    if kind == "NumberLiteral":
        if "." in text:
            return _constant([float(text)]), "decimal"
        return _constant([int(text)]), "integer"
    raise Unsupported(str(kind))


def _constant(value: list[Any]) -> Fn:
    return lambda focus, env: value


def _focus(focus: list[Any], env: Env) -> list[Any]:
    return focus


def _this(focus: list[Any], env: Env) -> list[Any]:
    return [env.this] if env.this is not None else focus


def _resource(focus: list[Any], env: Env) -> list[Any]:
    return [env.resource]


def _root(focus: list[Any], env: Env) -> list[Any]:
    return [env.root]


def _navigate(base: Fn, names: tuple[str, ...], primitive: bool) -> Fn:
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


def _logic(op: str, left: Fn, right: Fn) -> Fn:
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


def _compare(op: str, left: Fn, right: Fn, left_type: str | None,
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
            return [any(_equal(a[0], item, dates) for item in b)]
        if not a or not b:
            return []
        if op in ("=", "!="):
            if len(a) != len(b):
                return [op == "!="]
            same = all(_equal(x, y, dates) for x, y in zip(a, b, strict=True))
            return [same == (op == "=")]
        if len(a) > 1 or len(b) > 1:
            raise Defer("comparison of several items")
        x, y = _ordered(a[0], b[0], dates)
        return [{"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]]
    return run


def _equal(a: Any, b: Any, dates: bool) -> bool:
    if isinstance(a, (dict, list, NoValue)) or isinstance(b, (dict, list, NoValue)):
        raise Defer("equality of complex values")
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) != isinstance(b, str):
        raise Defer("equality of a string and a number")
    if dates and isinstance(a, str) and isinstance(b, str) and len(a) != len(b):
        raise Defer("dates of different precision")
    return bool(a == b)


def _ordered(a: Any, b: Any, dates: bool) -> tuple[Any, Any]:
    """Two values made comparable with ``<``, or Defer."""
    if isinstance(a, bool) or isinstance(b, bool):
        raise Defer("ordering booleans")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a, b
    if isinstance(a, dict) and isinstance(b, dict):
        return _quantities(a, b)
    if not (isinstance(a, str) and isinstance(b, str)):
        raise Defer("ordering of other values")
    if not dates:
        return a, b
    if "T" not in a and "T" not in b and len(a) == len(b):
        return a, b  # dates of one precision order as text
    if "T" in a and "T" in b and len(a) >= 19 and len(b) >= 19:
        x, y = _instant(a), _instant(b)
        if x is not None and y is not None:
            return x, y
    raise Defer("dates of different precision or without a time zone")


def _quantities(a: dict[str, Any], b: dict[str, Any]) -> tuple[Any, Any]:
    """Two Quantities of one unit (rng-2's ``low <= high``) order by value."""
    x, y = a.get("value"), b.get("value")
    unit_a = (a.get("system"), a.get("code")) if a.get("code") else (None, a.get("unit"))
    unit_b = (b.get("system"), b.get("code")) if b.get("code") else (None, b.get("unit"))
    if isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, (int, float)) or \
            not isinstance(y, (int, float)) or unit_a != unit_b or a.get("comparator") or \
            b.get("comparator"):
        raise Defer("quantities of different units")
    return x, y


def _instant(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def _union(left: Fn, right: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        out: list[Any] = []
        for item in (*left(focus, env), *right(focus, env)):
            if isinstance(item, (dict, list, NoValue)):
                raise Defer("union of complex values")
            if not any(type(item) is type(seen) and item == seen for seen in out):
                out.append(item)
        return out
    return run


def _plus(left: Fn, right: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        a, b = left(focus, env), right(focus, env)
        if not a or not b:
            return []
        if len(a) > 1 or len(b) > 1:
            raise Defer("+ on several items")
        return [a[0] + b[0]]
    return run


def _not(base: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        value = boolean(base(focus, env))
        return [] if value is None else [not value]
    return run


def _has_value(base: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        items = base(focus, env)
        return [len(items) == 1 and not isinstance(items[0], (dict, list, NoValue))]
    return run


def _criteria(criteria: Fn, item: Any, env: Env) -> bool | None:
    saved = env.this
    env.this = item
    try:
        return boolean(criteria([item], env))
    finally:
        env.this = saved


def _where(base: Fn, criteria: Fn) -> Fn:
    return lambda focus, env: [item for item in base(focus, env)
                               if _criteria(criteria, item, env) is True]


def _all(base: Fn, criteria: Fn) -> Fn:
    return lambda focus, env: [all(_criteria(criteria, item, env) is True
                                   for item in base(focus, env))]


def _exists_where(base: Fn, criteria: Fn) -> Fn:
    return lambda focus, env: [any(_criteria(criteria, item, env) is True
                                   for item in base(focus, env))]


def _intersect(base: Fn, argument: Fn) -> Fn:
    def run(focus: list[Any], env: Env) -> list[Any]:
        other = argument([env.this] if env.this is not None else focus, env)
        out: list[Any] = []
        for item in base(focus, env):
            if any(item == candidate for candidate in other) and item not in out:
                out.append(item)
        return out
    return run


def _string_function(name: str, base: Fn, argument: Fn) -> Fn:
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
