"""The FHIRPath subset that FHIRPath Patch paths are written in: its syntax and parser.

Supported: member navigation (``Patient.name.given``), indexers (``[n]``),
``where(criteria)`` with ``=``, ``!=``, ``~``, ``!~``, ``and``, ``or``, parentheses,
``$this``, string / number / boolean / ``@date`` literals and relative paths,
``first()``, ``last()``, ``ofType(T)`` / ``as(T)``, ``extension('url')``, and inside
criteria ``exists()``, ``empty()``, ``not()``. :func:`parse_path` turns a path into a
tree of the dataclasses below; syntax errors and unsupported functions are
``BadRequest``. :mod:`fhir_server.service.patch_fhirpath` evaluates the tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fhir_server.errors import BadRequest

_FUNCTIONS = {"where": 1, "first": 0, "last": 0, "ofType": 1, "as": 1, "extension": 1,
              "exists": 0, "empty": 0, "not": 0}
_TOKEN = re.compile(r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*')
    | (?P<date>@[0-9T:.+\-Z]+)
    | (?P<num>\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*|`[^`]+`|\$this)
    | (?P<op>!=|!~|[.()\[\],=~])
    )""", re.VERBOSE)
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n",
            "r": "\r", "t": "\t"}


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


def _unescape(body: str) -> str:
    """Undo FHIRPath string escapes (``\\'``, ``\\n``, ``\\u00e9``...)."""
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", lambda m: chr(int(m[1][1:], 16))
                  if len(m[1]) == 5 else _ESCAPES.get(m[1], m[1]), body)


class _Parser:
    """Recursive descent over the token list; ``and`` binds tighter than ``or``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while text[pos:].strip():
            match = _TOKEN.match(text, pos)
            if match is None or match.lastgroup is None:
                raise self.error(f"unexpected text at {text[pos:].strip()[:20]!r}")
            self.tokens.append((match.lastgroup, match.group(match.lastgroup)))
            pos = match.end()
        self.pos = 0

    def error(self, what: str) -> BadRequest:
        return BadRequest(f"Invalid FHIRPath {self.text!r}: {what}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, text: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (text is not None and token[1] != text):
            raise self.error(f"expected {text!r}" if text else "unexpected end")
        self.pos += 1
        return token

    def at(self, text: str) -> bool:
        token = self.peek()
        return token is not None and token[1] == text and token[0] in ("op", "ident")

    def parse(self) -> PathExpr:
        expr = self.expression()
        extra = self.peek()
        if extra is not None:
            raise self.error(f"unexpected {extra[1]!r}")
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
        if token is not None and token[0] == "op" and token[1] in ("=", "!=", "~", "!~"):
            self.take()
            return Binary(token[1], left, self.operand())
        return left

    def operand(self) -> Expr:
        kind, text = self.peek() or ("", "")
        if text == "(" and kind == "op":
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        if kind in ("str", "date", "num") or (kind == "ident" and text in ("true", "false")):
            self.take()
            return Literal(_unescape(text[1:-1]) if kind == "str" else text[1:]
                           if kind == "date" else text == "true" if kind == "ident"
                           else float(text) if "." in text else int(text))
        if kind == "ident":
            return self.path()
        raise self.error(f"unexpected {text!r}" if text else "unexpected end")

    def path(self) -> PathExpr:
        steps: list[Member | Index | Call] = []
        if self.peek() == ("ident", "$this"):
            self.take()
        else:
            steps.append(self.step())
        while self.at(".") or self.at("["):
            if self.take()[1] == ".":
                steps.append(self.step())
                continue
            kind, text = self.take()
            if kind != "num" or "." in text:
                raise self.error("an indexer needs a whole number")
            self.take("]")
            steps.append(Index(int(text)))
        return PathExpr(tuple(steps))

    def step(self) -> Member | Call:
        kind, text = self.take()
        if kind != "ident" or text == "$this":
            raise self.error(f"expected an element name, found {text!r}")
        name = text.strip("`")
        if not self.at("("):
            return Member(name)
        self.take("(")
        args: list[Expr] = []
        while not self.at(")"):
            if args:
                self.take(",")
            args.append(self.expression())
        self.take(")")
        if name not in _FUNCTIONS:
            raise self.error(f"function {name}() is not supported in patch paths")
        if len(args) != _FUNCTIONS[name]:
            raise self.error(f"{name}() takes {_FUNCTIONS[name]} argument(s)")
        return Call(name, tuple(args))


def parse_path(text: str) -> PathExpr:
    """Parse a patch path, raising ``BadRequest`` on syntax errors."""
    return _Parser(text).parse()
