"""The FHIRPath lexer shared by the SearchParameter and FHIRPath Patch parsers.

It follows the lexical rules of FHIRPath N1 (http://hl7.org/fhirpath/N1/grammar.html):
whitespace (``[ \\t\\r\\n]``) and ``//`` / ``/* */`` comments are skipped; strings and
delimited identifiers take the spec's escapes; dates and times are the strict ``@`` forms.
Each parser keeps its own grammar subset on top of the :class:`Token` list, so keywords
(``and``, ``as``...) stay plain identifiers here and are told apart by their raw text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

_TIME = r"\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_ZONE = r"(?:Z|[+-]\d{2}:\d{2})"
# Alternatives are tried in order (``num`` before ``op`` keeps ``1.5`` whole); ASCII makes
# ``\d`` the grammar's ``[0-9]``.
_TOKEN = re.compile(rf"""
      (?P<str>'(?:[^'\\]|\\.)*')
    | (?P<date>@(?:\d{{4}}(?:-\d{{2}}(?:-\d{{2}})?)?(?:T(?:{_TIME}{_ZONE}?)?)?|T{_TIME}))
    | (?P<num>\d+(?:\.\d+)?)
    | (?P<id>[A-Za-z_][A-Za-z0-9_]*|`(?:[^`\\]|\\.)+`)
    | (?P<special>\$(?:this|index|total)(?![A-Za-z0-9_]))
    | (?P<var>%(?:[A-Za-z_][A-Za-z0-9_]*|`(?:[^`\\]|\\.)+`|'(?:[^'\\]|\\.)*'))
    | (?P<op>!=|!~|<=|>=|[.()\[\]{{}},=~|+\-*/&<>])
    """, re.VERBOSE | re.DOTALL | re.ASCII)
# Whitespace and comments, which the N1 grammar sends to the hidden channel.
_SKIP = re.compile(r"(?:[ \t\r\n]+|//[^\r\n]*|/\*.*?\*/)*", re.DOTALL)
_ESCAPES: Mapping[str, str] = MappingProxyType({
    "'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r",
    "t": "\t"})
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


class Token(NamedTuple):
    """One token: its kind and its source text (quotes and backticks included).

    Kinds: ``str``, ``date``, ``num``, ``id`` (plain or backtick-delimited), ``special``
    (``$this``, ``$index``, ``$total``), ``var`` (``%name``) and ``op``.  Keeping the raw
    text means ``and`` is a keyword while `` `and` `` is just a name.
    """

    kind: str
    text: str


class LexError(ValueError):
    """Text that is no FHIRPath token (``#``, an unterminated string or comment...)."""

    def __init__(self, text: str, position: int) -> None:
        super().__init__(f"unexpected text at {text[position:].rstrip()[:20]!r}")
        self.position = position


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``; raises :class:`LexError` where none fits."""
    tokens: list[Token] = []
    pos = _skip(text, 0)
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            raise LexError(text, pos)
        tokens.append(Token(match.lastgroup, match.group(match.lastgroup)))
        pos = _skip(text, match.end())
    return tokens


def _skip(text: str, pos: int) -> int:
    """The position after any whitespace and comments at ``pos``."""
    match = _SKIP.match(text, pos)
    return match.end() if match else pos


def unescape(body: str) -> str:
    """Undo the FHIRPath escapes in a string or delimited identifier body.

    ``\\u`` and four hex digits is one UTF-16 code unit; an unknown escape keeps just
    the escaped character, as both parsers did before they shared this lexer.
    """
    return _ESCAPE.sub(lambda m: chr(int(m[1][1:], 16)) if len(m[1]) == 5
                       else _ESCAPES.get(m[1], m[1]), body)


def name(token: Token) -> str:
    """The name an ``id`` token stands for (backticks removed, escapes undone)."""
    text = token.text
    return unescape(text[1:-1]) if text.startswith("`") else text


def literal(token: Token) -> str | int | float | bool | None:
    """The value of a string, number, boolean or date/time token; None for others.

    Dates and times stay strings without the ``@``; a decimal becomes a float.
    """
    kind, text = token
    if kind == "str":
        return unescape(text[1:-1])
    if kind == "num":
        return float(text) if "." in text else int(text)
    if kind == "date":
        return text[1:]
    if kind == "id" and text in ("true", "false"):
        return text == "true"
    return None
