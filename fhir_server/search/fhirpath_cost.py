"""What evaluating a SearchParameter's FHIRPath expression on every write may cost.

An API-defined SearchParameter is evaluated on every write of its base types, so its
expression is checked before it is accepted: at most ``max_bytes`` bytes (checked
before anything is parsed), and, parsed with the full FHIRPath N1 grammar (fhirpathpy's
ANTLR parser, the one the slow path evaluates with), at most ``max_nodes`` nodes.

Nodes are what evaluation walks: every operator (``|`` included: a union of n paths
is n - 1 nodes besides the paths), path step, function call, literal and variable; the
grammar's wrapper rules (a term inside an expression, parentheses) are not counted.
The shipped R4 parameters need at most 215.

Refused whatever their size, as each makes one write's cost unbounded or hard to bound:

* ``descendants()`` and ``repeat()``: a walk of the whole resource per call (nested,
  quadratic in its size);
* ``matches()`` and ``replaceMatches()``: a regular expression of the caller's run by
  Python's backtracking engine on every write (a pattern such as ``(a+)+$`` takes
  exponential time);
* ``aggregate()``: an arbitrary loop over a collection;
* ``trace()``: a log line per evaluation, per write;
* brackets nested deeper than :data:`MAX_DEPTH` (the parser recurses per level).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from antlr4 import CommonTokenStream, InputStream, ParserRuleContext
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

#: functions refused in a SearchParameter expression (see the module's text)
COSTLY_FUNCTIONS = frozenset({"descendants", "repeat", "matches", "replaceMatches",
                              "aggregate", "trace"})
#: deepest nesting of ``(``, ``[`` and ``{``
MAX_DEPTH = 32
_OPENING = frozenset({"(", "[", "{"})
_CLOSING = frozenset({")", "]", "}"})
#: grammar rules that are no node of their own
_WRAPPERS = frozenset({"EntireExpressionContext", "ExpressionContext",
                       "TermExpressionContext", "LiteralContext", "InvocationContext"})
_NODE_SUFFIXES = ("ExpressionContext", "InvocationContext", "LiteralContext",
                  "ExternalConstantContext")


class ExpressionRefused(ValueError):
    """An expression the server will not evaluate on every write.

    ``too_costly`` tells a cost refusal (OperationOutcome ``too-costly``) from an
    expression that is no FHIRPath at all (``invalid``).
    """

    def __init__(self, message: str, too_costly: bool = True) -> None:
        super().__init__(message)
        self.too_costly = too_costly


@dataclass(frozen=True)
class Cost:
    """What an accepted expression was found to need."""

    nodes: int
    depth: int


class _Raise(ErrorListener):  # type: ignore[misc]
    """Syntax errors raise (fhirpathpy's own listener lets the parser recover)."""

    def syntaxError(self, recognizer: Any, offending_symbol: Any, line: int,  # noqa: N802
                    column: int, msg: str, e: Any) -> None:
        raise ExpressionRefused(f"is not FHIRPath (at character {column + 1}: {msg})",
                                too_costly=False)


def check(expression: str, max_bytes: int, max_nodes: int) -> Cost:
    """The cost of ``expression``; ExpressionRefused when it is over a limit, uses a
    costly function or is no FHIRPath."""
    size = len(expression.encode())
    if size > max_bytes:
        raise ExpressionRefused(f"is {size} bytes long; at most {max_bytes} are allowed "
                                "(FHIRPATH_MAX_BYTES)")
    listener = _Raise()
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    tokens = CommonTokenStream(lexer)
    tokens.fill()
    depth = _depth(t.text for t in tokens.tokens)
    parser = FHIRPathParser(tokens)
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    # the generated parser is untyped; give its entry point a type once
    entire: Callable[[], ParserRuleContext] = parser.entireExpression
    try:
        tree = entire()
    except RecursionError:  # prefix operators (``- - - 1``) nest without brackets
        raise ExpressionRefused("nests too deeply") from None
    nodes = 0
    for node in _walk(tree):
        kind = type(node).__name__
        if kind in _WRAPPERS or not kind.endswith(_NODE_SUFFIXES):
            continue
        nodes += 1
        if isinstance(node, FHIRPathParser.FunctionInvocationContext):
            name = _function_name(node)
            if name in COSTLY_FUNCTIONS:
                raise ExpressionRefused(f"uses {name}(), which is not allowed in a "
                                        "SearchParameter (its cost per write is unbounded)")
    if nodes > max_nodes:
        raise ExpressionRefused(f"has {nodes} nodes once parsed; at most {max_nodes} are "
                                "allowed (FHIRPATH_MAX_NODES)")
    return Cost(nodes, depth)


def _depth(texts: Iterator[str]) -> int:
    """The deepest bracket nesting of the token texts; refused past MAX_DEPTH."""
    depth = deepest = 0
    for text in texts:
        if text in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                raise ExpressionRefused(f"nests brackets more than {MAX_DEPTH} deep")
        elif text in _CLOSING:
            depth -= 1
    return deepest


def _function_name(node: Any) -> str:
    """The name a FunctionInvocation calls."""
    return str(node.functn().identifier().getText())


def _walk(tree: ParserRuleContext) -> Iterator[ParserRuleContext]:
    """Every rule node of the parse tree (iteratively: long chains make deep trees)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(c for c in node.children or () if isinstance(c, ParserRuleContext))
