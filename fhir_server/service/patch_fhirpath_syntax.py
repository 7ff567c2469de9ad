"""The FHIRPath subset that FHIRPath Patch paths are written in: its syntax and parser.

Supported: member navigation (``Patient.name.given``), indexers (``[n]``),
``where(criteria)`` with ``=``, ``!=``, ``~``, ``!~``, ``and``, ``or``, parentheses,
``$this``, string / number / boolean / ``@date`` literals and relative paths,
``first()``, ``last()``, ``ofType(T)`` / ``as(T)``, ``extension('url')``, and inside
criteria ``exists()``, ``empty()``, ``not()``. :func:`parse_path` turns a path into a
tree of the dataclasses below; syntax errors and unsupported functions are
``BadRequest``. :mod:`fhir_server.service.patch_fhirpath` evaluates the tree. Tokens
come from :mod:`fhir_server.search.fhirpath_lex`, shared with the search parser so that
both read strings, names and dates the same (N1) way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.errors import BadRequest
from fhir_server.search.fhirpath_lex import LexError, Token, literal, name, tokenize

_FUNCTIONS = {"where": 1, "first": 0, "last": 0, "ofType": 1, "as": 1, "extension": 1,
              "exists": 0, "empty": 0, "not": 0}


@dataclass(frozen=True)
class Member:
    """``.name``: a child element."""
    name: str


@dataclass(frozen=True)
class Index:
    """``[n]``: the n-th item of the collection."""
    index: int


@dataclass(frozen=True)
class Call:
    """``.fn(args)``: a function on the collection."""
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class PathExpr:
    """Steps applied to the focus (``$this``, or the resource at the top)."""
    steps: tuple[Member | Index | Call, ...]


@dataclass(frozen=True)
class Literal:
    """A string, number, boolean or date literal."""
    value: Any


@dataclass(frozen=True)
class Binary:
    """``left op right`` for comparisons, ``and`` and ``or``."""
    op: str
    left: Expr
    right: Expr


Expr = PathExpr | Literal | Binary


class _Parser:
    """Recursive descent over the token list; ``and`` binds tighter than ``or``."""

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self.tokens = tokenize(text)
        except LexError as e:
            raise self.error(str(e)) from None
        self.pos = 0

    def error(self, what: str) -> BadRequest:
        return BadRequest(f"Invalid FHIRPath {self.text!r}: {what}")

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, text: str | None = None) -> Token:
        token = self.peek()
        if token is None or (text is not None and token.text != text):
            raise self.error(f"expected {text!r}" if text else "unexpected end")
        self.pos += 1
        return token

    def at(self, text: str) -> bool:
        token = self.peek()
        return token is not None and token.text == text and token.kind in ("op", "id")

    def parse(self) -> PathExpr:
        expr = self.expression()
        extra = self.peek()
        if extra is not None:
            raise self.error(f"unexpected {extra.text!r}")
        if not isinstance(expr, PathExpr):
            raise self.error("a patch path must be a location, not a comparison or literal")
        return expr

    def expression(self, levels: tuple[str, ...] = ("or", "and")) -> Expr:
        """``or`` of ``and`` of comparisons: ``and`` binds tighter."""
        if not levels:
            return self.comparison()
        left = self.expression(levels[1:])
        while self.at(levels[0]):
            self.take()
            left = Binary(levels[0], left, self.expression(levels[1:]))
        return left

    def comparison(self) -> Expr:
        left = self.operand()
        token = self.peek()
        if token is not None and token.kind == "op" and token.text in ("=", "!=", "~", "!~"):
            self.take()
            return Binary(token.text, left, self.operand())
        return left

    def operand(self) -> Expr:
        token = self.peek() or Token("", "")
        if token == ("op", "("):
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        value = literal(token)
        if value is not None:
            self.take()
            return Literal(value)
        if token.kind == "id" or token == ("special", "$this"):
            return self.path()
        # e.g. ``%variable``, ``$index`` or an operator: outside the patch subset
        raise self.error(f"unexpected {token.text!r}" if token.text else "unexpected end")

    def path(self) -> PathExpr:
        steps: list[Member | Index | Call] = []
        if self.peek() == ("special", "$this"):
            self.take()
        else:
            steps.append(self.step())
        while self.at(".") or self.at("["):
            if self.take().text == ".":
                steps.append(self.step())
                continue
            kind, text = self.take()
            if kind != "num" or "." in text:
                raise self.error("an indexer needs a whole number")
            self.take("]")
            steps.append(Index(int(text)))
        return PathExpr(tuple(steps))

    def step(self) -> Member | Call:
        token = self.take()
        if token.kind != "id":
            raise self.error(f"expected an element name, found {token.text!r}")
        member = name(token)
        if not self.at("("):
            return Member(member)
        self.take("(")
        args: list[Expr] = []
        while not self.at(")"):
            if args:
                self.take(",")
            args.append(self.expression())
        self.take(")")
        if member not in _FUNCTIONS:
            raise self.error(f"function {member}() is not supported in patch paths")
        if len(args) != _FUNCTIONS[member]:
            raise self.error(f"{member}() takes {_FUNCTIONS[member]} argument(s)")
        return Call(member, tuple(args))


def parse_path(text: str) -> PathExpr:
    """Parse a patch path, raising ``BadRequest`` on syntax errors."""
    return _Parser(text).parse()
