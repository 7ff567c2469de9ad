"""String search parameters (``idx_string``): one row per piece of text.

``norm`` is the case- and accent-folded form with punctuation read as blanks
(:func:`fold`: "Ear,Nose,Throat" is "ear nose throat"), ``exact`` the text as written.
A family name of several words (``van den Heuvel``) has one more row per later word
(``den heuvel``, ``heuvel``) whose ``exact`` is empty: those rows answer the default
prefix search on each part (search.html 3.1.1.4.8) and are left out of ``:exact`` and of
sorting. Predicates (R4 search.html, "string"):

* default: the value (or a part of a family name) equals or starts with the search text,
  both folded (``norm LIKE 'text%'``, served by the ``text_pattern_ops`` index);
* ``:exact``: the whole value, case and accents included (``exact = text``);
* ``:contains``: the folded text anywhere (``norm LIKE '%text%'``, trigram index); a
  value needs a word of 3 letters or digits (a 400 ``too-costly`` otherwise);
* ``:text``: "advanced text handling", here every word of the search text starts a
  word of the value, in any order (``name:text=quinones`` finds "Carreno Quinones").

Prefixes do not apply: ``gt2020`` is searched as the text "gt2020".
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_server.errors import BadRequest
from fhir_server.search.base import (
    IndexContext,
    Node,
    ParseContext,
    normalize,
    refuse_modifier,
    unescape,
)

_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")
#: Elements of other complex types that are not searchable text (codes, links, metadata).
_NOT_TEXT = frozenset({
    "id", "extension", "modifierExtension", "system", "url", "reference", "use", "type",
    "version", "period", "contentType", "data", "hash", "language", "creation",
    "comparator", "code", "rank", "start", "end",
})
#: A btree index entry must stay under ~2.7 kB: longer text is indexed by its first
#: _MAX_BYTES bytes (searches are clipped alike, so prefixes still match).
_MAX_BYTES = 2000


#: The shortest word a ``:contains`` value needs: pg_trgm's index has no entry for
#: less than a trigram.
CONTAINS_MIN = 3
#: Punctuation and symbols (and ``_``): read as blanks by :func:`fold`.
_PUNCTUATION = re.compile(r"[^\w\s]|_")
#: An expression whose values are family names (``Patient.name.family``).
_FAMILY = re.compile(r"\.family\b")


def fold(text: str) -> str:
    """The form string search compares: case, accents and punctuation folded away
    (``"Ear,Nose-Throat"`` -> ``"ear nose throat"``); the same at index and query time."""
    return normalize(_PUNCTUATION.sub(" ", normalize(text)))


def family_param(expression: str | None) -> bool:
    """Whether a string parameter's expression gives family names (``family``)."""
    return expression is not None and _FAMILY.search(expression) is not None


def as_family(nodes: Sequence[Node]) -> list[Node]:
    """The string values of a family parameter as HumanNames (their parts are searched)."""
    return [Node({"family": n.value}, "HumanName") if isinstance(n.value, str) else n
            for n in nodes]


def word_parts(folded: str) -> list[str]:
    """The tails of a folded text from each word after the first (``a b c`` -> ``b c``,
    ``c``)."""
    words = folded.split(" ")
    return [" ".join(words[i:]) for i in range(1, len(words))]


def clip(text: str) -> str:
    """``text`` cut to at most 2000 UTF-8 bytes, on a character boundary."""
    data = text.encode()
    if len(data) <= _MAX_BYTES:
        return text
    return data[:_MAX_BYTES].decode(errors="ignore")


def family_names(node: Node) -> Iterator[str]:
    """The family names of a HumanName (whose parts get rows of their own)."""
    if node.type == "HumanName" and isinstance(node.value, dict):
        yield from _parts(node.value, ("family",))


def texts(node: Node) -> Iterator[str]:
    """The searchable strings of one value: a primitive, a HumanName, an Address, ..."""
    value = node.value
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        if node.type == "HumanName":
            yield from _parts(value, _NAME_PARTS)
        elif node.type == "Address":
            yield from _parts(value, _ADDRESS_PARTS)
        else:
            yield from _walk(value)


def _parts(value: dict[str, Any], keys: tuple[str, ...]) -> Iterator[str]:
    for key in keys:
        part = value.get(key)
        for item in part if isinstance(part, list) else [part]:
            if isinstance(item, str):
                yield item


def _walk(value: Any) -> Iterator[str]:
    # Any other complex type: its string elements, minus codes, URLs and metadata
    # (CodeableConcept -> text and displays, Identifier -> value, Annotation -> text).
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in _NOT_TEXT:
                yield from _walk(item)


@dataclass(frozen=True, slots=True)
class StringValue:
    """A string search value: ``mode`` is ``prefix`` (no modifier), ``exact``,
    ``contains`` or ``text``; ``text`` is folded except for ``exact``; ``words`` are the
    folded words of a ``:text`` search."""

    mode: str
    text: str
    words: tuple[str, ...] = ()


class StringType:
    """The ``string`` parameter type: table ``idx_string``."""

    name: str = "string"
    columns: tuple[tuple[str, str], ...] = (("norm", "text"), ("exact", "text"))
    modifiers: frozenset[str] = frozenset({"exact", "contains", "text"})

    def rows(self, p: int, nodes: list[Node], ctx: IndexContext) -> list[tuple[Any, ...]]:
        """One ``(p, norm, exact)`` row per distinct non-blank piece of text, and one
        ``(p, part, "")`` per later word of a family name (see the module doc)."""
        out: list[tuple[Any, ...]] = []
        seen: set[str] = set()
        for node in nodes:
            for text in texts(node):
                if not text.strip() or text in seen:
                    continue
                seen.add(text)
                out.append((p, clip(fold(text)), clip(text)))
        parts: set[str] = set()
        for node in nodes:
            for family in family_names(node):
                for part in word_parts(fold(family)):
                    if part not in parts:
                        parts.add(part)
                        out.append((p, clip(part), ""))
        return out

    def parse(self, p: int, modifier: str | None, raw: str, ctx: ParseContext) -> StringValue:
        """The text with its matching mode (see the module doc)."""
        refuse_modifier(self.name, modifier, self.modifiers)
        text = unescape(raw)
        if modifier == "exact":
            return StringValue("exact", clip(text))
        folded = fold(text)
        if not folded:
            raise BadRequest("a string parameter needs a value with a letter or digit, not "
                             "only blanks and punctuation")
        if modifier == "text":
            return StringValue("text", folded, tuple(folded.split()))
        if modifier == "contains" and max(len(w) for w in folded.split()) < CONTAINS_MIN:
            # The trigram index finds nothing shorter: every row would be read.
            raise BadRequest(f":contains needs a word of at least {CONTAINS_MIN} letters or "
                             f"digits, not {text[:40]!r}", code="too-costly")
        return StringValue(modifier or "prefix", clip(folded))


#: The string parameter type.
STRING = StringType()
