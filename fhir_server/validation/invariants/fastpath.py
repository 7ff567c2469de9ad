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

from typing import Any

from fhir_server.definitions import Definitions
from fhir_server.validation.invariants import fastpath_ops as closures
from fhir_server.validation.invariants.fastpath_ops import (
    Defer,
    Env,
    Fn,
    Unsupported,
)

__all__ = ["Compiler", "Defer", "Env", "Fn", "Unsupported"]

Compiled = tuple[Fn, str | None]
FUNCTIONS = frozenset({"exists", "empty", "not", "hasValue", "count", "first", "where",
                       "all", "startsWith", "substring", "trace", "contains", "intersect"})
NUMBER_TYPES = frozenset({"decimal", "integer", "positiveInt", "unsignedInt"})


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
            return closures.op_logic(ops[0], left, right), "boolean"
        if kind in ("EqualityExpression", "InequalityExpression", "MembershipExpression"):
            left, left_type = self._expr(children[0], path, this)
            right, right_type = self._expr(children[1], path, this)
            return closures.op_compare(ops[0], left, right, left_type, right_type), "boolean"
        if kind == "UnionExpression":
            left, left_type = self._expr(children[0], path, this)
            right, right_type = self._expr(children[1], path, this)
            return closures.op_union(left, right), left_type if left_type == right_type else None
        if kind == "AdditiveExpression" and ops == ["+"]:
            left, left_type = self._expr(children[0], path, this)
            right, right_type = self._expr(children[1], path, this)
            if left_type != "integer" or right_type != "integer":
                raise Unsupported("+ on other than integers")
            return closures.op_plus(left, right), "integer"
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
                return closures.op_constant(["http://unitsofmeasure.org"]), "uri"
            if name == "resource":
                return closures.op_resource, self._resource_type
            if name == "rootResource":
                return closures.op_root, "DomainResource"
            raise Unsupported(f"%{name}")
        if kind == "InvocationTerm":
            return self._invoke(closures.op_focus, path, children[0], this)
        raise Unsupported(str(kind))

    def _invoke(self, base: Fn, path: str | None, node: dict[str, Any],
                this: str | None) -> Compiled:
        kind = node.get("type")
        children = node.get("children", [])
        if kind == "MemberInvocation":
            return self._member(base, path, _identifier(children[0]))
        if kind == "ThisInvocation":
            return closures.op_this, this
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
        return closures.op_navigate(base, names, primitive), child

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
                return closures.op_where(base, criteria), path
            if name == "all":
                return closures.op_all(base, criteria), "boolean"
            return closures.op_exists_where(base, criteria), "boolean"
        if params and name not in ("startsWith", "substring", "contains", "intersect"):
            raise Unsupported(f"{name}() with arguments")
        simple: dict[str, Compiled] = {
            "exists": (lambda f, e: [bool(base(f, e))], "boolean"),
            "empty": (lambda f, e: [not base(f, e)], "boolean"),
            "count": (lambda f, e: [len(base(f, e))], "integer"),
            "first": (lambda f, e: base(f, e)[:1], path),
            "not": (closures.op_not(base), "boolean"),
            "hasValue": (closures.op_has_value(base), "boolean"),
        }
        if name in simple:
            return simple[name]
        argument, _ = self._expr(params[0], path, path) if params else (closures.op_focus, None)
        if name == "intersect":
            return closures.op_intersect(base, argument), path
        if path not in ("string", "code", "uri", "id", "markdown", "url", "canonical"):
            raise Unsupported(f"{name}() on {path}")
        return closures.op_string_function(name, base, argument), "boolean" if name != "substring" \
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
        return closures.op_constant([body]), "string"
    if kind == "BooleanLiteral":
        return closures.op_constant([text == "true"]), "boolean"
    if kind == "NumberLiteral":
        if "." in text:
            return closures.op_constant([float(text)]), "decimal"
        return closures.op_constant([int(text)]), "integer"
    raise Unsupported(str(kind))
