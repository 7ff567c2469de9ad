"""A small FHIRPath evaluator that finds element *locations*, for FHIRPath Patch.

Supported: member navigation over arrays (``Patient.name.given``), choice elements by
their stem (``Observation.value`` finds ``valueQuantity``), indexers (``[n]``),
``where(criteria)`` with ``=``, ``!=``, ``~``, ``!~``, ``and``, ``or``, parentheses,
``$this``, string / number / boolean / ``@date`` literals and relative paths,
``first()``, ``last()``, ``ofType(T)`` / ``as(T)``, ``extension('url')``, and inside
criteria ``exists()``, ``empty()``, ``not()``. The id and extensions of a primitive
(``Patient.birthDate.extension``) are found in its ``_birthDate`` JSON sibling.

Each result is a :class:`Node` that knows the container holding it, so the patch code
can replace or remove it in place. Syntax errors and unsupported functions are
``BadRequest``; results that do not fit the resource are ``Unprocessable``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fhir_server.definitions import Definitions, ElementInfo
from fhir_server.errors import BadRequest, Issue, Unprocessable

PRIMITIVE_TYPES = frozenset({
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
    "instant", "integer", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt",
    "uri", "url", "uuid", "xhtml"})
# R4's open type list: every type a choice element ([x]) may take, so the JSON suffix
# of a choice can be recognised without the definitions.
_CHOICE_TYPES = (PRIMITIVE_TYPES - {"xhtml"}) | frozenset({
    "Address", "Age", "Annotation", "Attachment", "CodeableConcept", "Coding",
    "ContactPoint", "Count", "Distance", "Duration", "HumanName", "Identifier", "Money",
    "Period", "Quantity", "Range", "Ratio", "Reference", "SampledData", "Signature",
    "Timing", "ContactDetail", "Contributor", "DataRequirement", "Expression",
    "ParameterDefinition", "RelatedArtifact", "TriggerDefinition", "UsageContext",
    "Dosage", "Meta"})
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


def unprocessable(diagnostics: str, path: str | None = None) -> Unprocessable:
    """A 422 whose issue points at ``path`` (a FHIRPath or JSON Pointer) when given."""
    issues = [Issue(Unprocessable.code, diagnostics, expression=(path,))] if path else None
    return Unprocessable(diagnostics, issues)


def bad_request(diagnostics: str, path: str | None = None) -> BadRequest:
    """A 400 whose issue points at ``path`` when given."""
    issues = [Issue(BadRequest.code, diagnostics, expression=(path,))] if path else None
    return BadRequest(diagnostics, issues)


def type_name(suffix: str) -> str:
    """The FHIR type named by a JSON suffix (``Quantity`` → Quantity, ``DateTime`` → dateTime)."""
    lowered = suffix[:1].lower() + suffix[1:]
    return lowered if lowered in PRIMITIVE_TYPES else suffix


def _suffix(type_code: str) -> str:
    return type_code[:1].upper() + type_code[1:]


# --- syntax ---------------------------------------------------------------------------

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
        return bad_request(f"Invalid FHIRPath {self.text!r}: {what}")

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


# --- evaluation -----------------------------------------------------------------------

@dataclass(eq=False)
class Node:
    """One element found by a path, with where it lives.

    ``parent[prop]`` (or ``parent[prop][index]`` for array items) holds ``value``;
    ``owner`` is the node whose value is ``parent``; ``struct`` is where the
    definitions list the children of ``value`` (``Patient.contact``, ``HumanName``);
    ``stem`` is set when a choice was reached by its stem (``value`` → ``valueQuantity``).
    """

    value: Any
    parent: dict[str, Any] | None = None
    prop: str | None = None
    index: int | None = None
    owner: Node | None = None
    struct: str | None = None
    stem: str | None = None


def element_info(definitions: Definitions | None, struct: str | None,
                 key: str) -> ElementInfo | None:
    """The definition of JSON property ``key`` under ``struct``, when both are known."""
    if definitions is None or struct is None:
        return None
    return definitions.properties(struct).get(key)


def child_struct(definitions: Definitions | None, struct: str | None, key: str,
                 value: Any) -> str | None:
    """Where the children of the value of ``key`` under ``struct`` are defined."""
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return str(value["resourceType"])  # contained / Bundle.entry.resource
    if key.startswith("_"):
        return "Element"
    info = element_info(definitions, struct, key)
    if info is None:
        return None
    if info.is_backbone:
        return info.path
    if info.is_choice:
        suffix = key[len(info.name) - 3:]
        return next((t for t in info.types if _suffix(t) == suffix), None)
    return info.types[0] if len(info.types) == 1 else None


def find_shadow(node: Node) -> Node | None:
    """The ``_name`` JSON sibling holding a primitive's id and extensions, if present."""
    if node.parent is None or node.prop is None or node.prop.startswith("_"):
        return None
    key = "_" + node.prop
    found = node.parent.get(key)
    if node.index is not None:
        found = found[node.index] if isinstance(found, list) and node.index < len(found) \
            else None
    return Node(found, node.parent, key, node.index, node.owner, "Element") \
        if isinstance(found, dict) else None


def _equal(left: Any, right: Any, equivalent: bool) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right  # true is not 1
    if equivalent and isinstance(left, str) and isinstance(right, str):
        return " ".join(left.split()).casefold() == " ".join(right.split()).casefold()
    return bool(left == right)


def _truth(nodes: list[Node]) -> bool | None:
    """FHIRPath boolean evaluation: empty is unknown, a lone non-boolean is true."""
    if not nodes:
        return None
    if len(nodes) == 1 and isinstance(nodes[0].value, bool):
        return nodes[0].value
    return True


class Evaluator:
    """Evaluates parsed paths over a resource, using the definitions when given."""

    def __init__(self, definitions: Definitions | None = None) -> None:
        self.definitions = definitions

    def is_choice_key(self, key: str, stem: str, struct: str | None) -> bool:
        """Whether JSON property ``key`` is a type variant of choice element ``stem``."""
        suffix = key[len(stem):]
        if not key.startswith(stem) or not suffix[:1].isupper():
            return False
        if self.definitions is not None and struct is not None:
            children = self.definitions.children(struct)
            info = children.get(stem + "[x]")
            if info is not None:
                return suffix in {_suffix(t) for t in info.types}
            if children:
                return False  # a known structure without that choice element
        return type_name(suffix) in _CHOICE_TYPES

    def expand(self, node: Node, key: str, stem: str | None = None) -> list[Node]:
        """The items of property ``key`` of ``node`` (one node per array item)."""
        raw = node.value[key]

        def make(item: Any, index: int | None) -> Node:
            struct = child_struct(self.definitions, node.struct, key, item)
            return Node(item, node.value, key, index, node, struct, stem)

        if isinstance(raw, list):
            return [make(item, i) for i, item in enumerate(raw)]
        return [make(raw, None)]

    def children(self, node: Node, name: str) -> list[Node]:
        """``node.name``, trying the choice variants and a primitive's ``_`` sibling."""
        if not isinstance(node.value, dict):
            shadow = find_shadow(node) if name in ("id", "extension") else None
            return self.children(shadow, name) if shadow is not None else []
        if name in node.value:
            return self.expand(node, name)
        return [found for key in list(node.value)
                if not key.startswith("_") and self.is_choice_key(key, name, node.struct)
                for found in self.expand(node, key, stem=name)]

    def type_of(self, node: Node) -> str | None:
        """The FHIR type of a node's value, where it can be told."""
        if node.stem is not None and node.prop is not None:
            return type_name(node.prop[len(node.stem):])
        if isinstance(node.value, dict) and isinstance(node.value.get("resourceType"), str):
            return str(node.value["resourceType"])
        if node.struct is not None and "." not in node.struct:
            return node.struct
        return None

    def call(self, step: Call, nodes: list[Node]) -> list[Node]:
        """Apply one function to a collection."""
        name, args = step.name, step.args
        if name == "where":
            return [n for n in nodes if _truth(self.evaluate(args[0], [n])) is True]
        if name == "first":
            return nodes[:1]
        if name == "last":
            return nodes[-1:]
        if name in ("exists", "empty"):
            return [Node(bool(nodes) == (name == "exists"))]
        if name == "not":
            truth = _truth(nodes)
            return [] if truth is None else [Node(not truth)]
        if name == "extension":
            url = args[0]
            if not isinstance(url, Literal) or not isinstance(url.value, str):
                raise bad_request("extension() takes the extension URL as a string literal")
            return [ext for n in nodes for ext in self.children(n, "extension")
                    if isinstance(ext.value, dict) and ext.value.get("url") == url.value]
        target = args[0]  # ofType / as: a type name, maybe qualified (FHIR.Quantity)
        last = target.steps[-1] if isinstance(target, PathExpr) and target.steps else None
        if not isinstance(last, Member):
            raise bad_request(f"{name}() takes a type name")
        wanted = last.name.lower()
        return [n for n in nodes if (self.type_of(n) or "").lower() == wanted]

    def steps(self, steps: tuple[Member | Index | Call, ...], nodes: list[Node]) -> list[Node]:
        """Apply path steps, left to right, to a collection."""
        for step in steps:
            if isinstance(step, Member):
                nodes = [child for n in nodes for child in self.children(n, step.name)]
            elif isinstance(step, Index):
                nodes = nodes[step.index:step.index + 1]
            else:
                nodes = self.call(step, nodes)
        return nodes

    def evaluate(self, expr: Expr, focus: list[Node]) -> list[Node]:
        """Evaluate an expression against a focus collection."""
        if isinstance(expr, PathExpr):
            return self.steps(expr.steps, focus)
        if isinstance(expr, Literal):
            return [Node(expr.value)]
        if expr.op in ("and", "or"):
            left = _truth(self.evaluate(expr.left, focus))
            right = _truth(self.evaluate(expr.right, focus))
            decisive = expr.op == "or"  # true decides `or`, false decides `and`
            if decisive in (left, right):
                return [Node(decisive)]
            return [] if None in (left, right) else [Node(not decisive)]
        lefts = self.evaluate(expr.left, focus)
        rights = self.evaluate(expr.right, focus)
        if not lefts or not rights:
            return []
        equivalent = expr.op.endswith("~")
        same = len(lefts) == len(rights) and all(
            _equal(a.value, b.value, equivalent) for a, b in zip(lefts, rights, strict=True))
        return [Node(same != expr.op.startswith("!"))]
