"""Parse the FHIRPath shapes that SearchParameter expressions use into plain steps.

Only a small, common subset is understood (everything else returns ``None`` from
:func:`parse_part` and is evaluated by fhirpathpy instead):

* a root: a type name (``Patient``), ``%resource``, or - for component expressions and
  roots that are not type names - the context itself (``code``, ``value.as(Quantity)``);
* ``.name`` child steps, ``[n]`` and ``.first()`` indexing;
* ``.as(T)``, ``.ofType(T)`` and ``(X as T)`` / ``X as T`` type filters;
* ``.where(resolve() is T)``, ``.where(name = 'literal')`` and ``.extension('url')``;
* a final ``.exists()``, and ``X.exists() and X != literal`` (Patient ``deceased``).

Union (``|``) splitting is textual (:func:`split_union`) so that each part can fall back
on its own. Tokens come from :mod:`fhir_server.search.fhirpath_lex` (shared with FHIRPath
Patch); any token this subset does not use (``+``, ``$this``, dates...) makes the part
unparseable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fhir_server.search.fhirpath_lex import LexError, Token, literal, tokenize
from fhir_server.search.fhirpath_lex import name as token_name


@dataclass(frozen=True, slots=True)
class Child:
    """Select the child element ``name`` (choice elements without ``[x]``)."""

    name: str


@dataclass(frozen=True, slots=True)
class Index:
    """Keep only item ``n`` of the whole collection (``[n]``, ``first()``)."""

    n: int


@dataclass(frozen=True, slots=True)
class AsType:
    """Keep the items of type ``name`` or a subtype (``as``/``ofType``; item-wise)."""

    name: str


@dataclass(frozen=True, slots=True)
class WhereRef:
    """``where(resolve() is T)``: keep References that point to resource type ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class WhereEq:
    """``where(name = literal)``: keep items whose child ``name`` equals ``literal``."""

    name: str
    literal: Any


@dataclass(frozen=True, slots=True)
class Exists:
    """``exists()``: one boolean, whether the collection so far is non-empty."""


Step = Child | Index | AsType | WhereRef | WhereEq | Exists


@dataclass(frozen=True, slots=True)
class PathExpr:
    """A parsed union part: a root and its steps.

    ``root`` is ``"type"`` (``root_name`` is the type at the start), ``"context"`` (the
    expression starts at the context node) or ``"resource"`` (``%resource``).
    ``not_equal`` holds the literal of the ``X.exists() and X != literal`` shape.
    """

    root: str
    root_name: str
    steps: tuple[Step, ...]
    not_equal: tuple[Any, ...] = ()


class _Unsupported(Exception):
    """The part uses FHIRPath beyond the fast subset."""


def split_union(expression: str) -> list[str]:
    """Split ``expression`` at the top-level ``|`` operators (not in quotes or brackets)."""
    parts: list[str] = []
    depth = 0
    quote = ""
    start = 0
    i = 0
    while i < len(expression):
        char = expression[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'`\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
        i += 1
    parts.append(expression[start:].strip())
    return [p for p in parts if p]


def root_name(part: str) -> str:
    """The first identifier of a part (``(Observation.value as X)`` -> ``Observation``)."""
    match = re.match(r"[\s(]*(%?[A-Za-z_][A-Za-z0-9_]*)", part)
    return match.group(1) if match else ""


def _literal(token: Token) -> Any:
    """The Python value of a string, number or boolean token (dates are not used)."""
    value = literal(token)
    if value is None or token.kind == "date":
        raise _Unsupported(token.text)
    return value


class _Parser:
    """Recursive descent over the tokens of one union part."""

    def __init__(self, tokens: list[Token], relative: bool) -> None:
        self.tokens = tokens
        self.pos = 0
        self.relative = relative

    def peek(self, offset: int = 0) -> Token:
        """The token ``offset`` ahead, or ``("", "")`` past the end."""
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else Token("", "")

    def take(self, text: str | None = None, kind: str | None = None) -> str:
        """Consume one token, checking its text or kind."""
        token = self.peek()
        if (text is not None and token.text != text) or (kind is not None and token.kind != kind):
            raise _Unsupported(token.text)
        if not token.kind:
            raise _Unsupported("end")
        self.pos += 1
        return token_name(token) if token.kind == "id" else token.text

    def literal(self) -> Any:
        """Consume a literal."""
        value = _literal(self.peek())
        self.pos += 1
        return value

    def part(self) -> PathExpr:
        """``path ['as' T] ['and' path '!=' literal]`` up to the end of the tokens."""
        expr = self.path()
        if self.peek()[1] == "and":
            self.take("and")
            other = self.path()
            self.take("!=")
            literal = self.literal()
            # Only ``X.exists() and X != lit`` with the same X is understood.
            if expr.steps[-1:] != (Exists(),) or other.steps != expr.steps[:-1] \
                    or other.root != expr.root or other.root_name != expr.root_name:
                raise _Unsupported("and")
            expr = PathExpr(expr.root, expr.root_name, other.steps, (literal,))
        if self.pos != len(self.tokens):
            raise _Unsupported(self.peek()[1])
        return expr

    def path(self) -> PathExpr:
        """A primary term, its invocations and an optional infix ``as``."""
        kind, text = self.peek()
        if text == "(":
            self.take("(")
            inner = self.path()
            self.take(")")
            root, name, steps = inner.root, inner.root_name, list(inner.steps)
        elif kind == "var":
            if self.take(kind="var") != "%resource":
                raise _Unsupported(text)
            root, name, steps = "resource", "", []
        elif kind == "id" and not self.relative and text[:1].isupper():
            root, name, steps = "type", self.take(kind="id"), []
        elif kind == "id":
            root, name, steps = "context", "", [Child(self.take(kind="id"))]
        else:
            raise _Unsupported(text)
        self.invocations(steps)
        if self.peek()[1] == "as":
            self.take("as")
            steps.append(AsType(self.take(kind="id")))
        return PathExpr(root, name, tuple(steps))

    def invocations(self, steps: list[Step]) -> None:
        """``.name``, ``.fn(...)`` and ``[n]`` after a term, appended to ``steps``."""
        while True:
            text = self.peek()[1]
            if text == "[":
                self.take("[")
                steps.append(Index(int(self.take(kind="num"))))
                self.take("]")
            elif text == ".":
                self.take(".")
                name = self.take(kind="id")
                if self.peek()[1] == "(":
                    self.function(name, steps)
                else:
                    steps.append(Child(name))
            else:
                return

    def function(self, name: str, steps: list[Step]) -> None:
        """One supported function call (the name is already consumed)."""
        self.take("(")
        if name in ("as", "ofType"):
            steps.append(AsType(self.take(kind="id")))
        elif name == "first":
            steps.append(Index(0))
        elif name == "exists":
            steps.append(Exists())
        elif name == "extension":
            steps += [Child("extension"), WhereEq("url", _literal(self.peek()))]
            self.pos += 1
        elif name == "where" and self.peek()[1] == "resolve":
            self.take("resolve")
            self.take("(")
            self.take(")")
            self.take("is")
            steps.append(WhereRef(self.take(kind="id")))
        elif name == "where":
            field = self.take(kind="id")
            self.take("=")
            steps.append(WhereEq(field, self.literal()))
        else:
            raise _Unsupported(name)
        self.take(")")


def parse_part(part: str, relative: bool = False) -> PathExpr | None:
    """Parse one union part; None when it is outside the fast subset.

    ``relative`` is for component expressions, whose leading identifiers are children
    of the context node rather than type names.
    """
    try:
        parsed = _Parser(tokenize(part), relative).part()
    except (_Unsupported, LexError, ValueError):
        return None
    # exists() is understood only as the very last step.
    if Exists() in parsed.steps[:-1]:
        return None
    return parsed
