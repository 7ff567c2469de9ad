"""String search parameters (``idx_string``): one row per piece of text.

``norm`` is the case- and accent-folded form (:func:`~fhir_server.search.base.normalize`),
``exact`` the text as written. Predicates (R4 search.html, "string"):

* default: the value equals or starts with the search text, both folded
  (``norm LIKE 'text%'``, served by the ``text_pattern_ops`` index);
* ``:exact``: the whole value, case and accents included (``exact = text``);
* ``:contains``: the folded text anywhere (``norm LIKE '%text%'``, trigram index);
* ``:text``: "advanced text handling", here every word of the search text starts a
  word of the value, in any order (``name:text=quinones`` finds "Carreno Quinones").

Prefixes do not apply: ``gt2020`` is searched as the text "gt2020".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Fragment, Node, SearchContext, normalize, unescape

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


def clip(text: str) -> str:
    """``text`` cut to at most 2000 UTF-8 bytes, on a character boundary."""
    data = text.encode()
    if len(data) <= _MAX_BYTES:
        return text
    return data[:_MAX_BYTES].decode(errors="ignore")


def like_escape(text: str) -> str:
    """``text`` with the LIKE wildcards ``%`` and ``_`` (and the escape ``\\``) escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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


class StringIndex:
    """The ``string`` parameter type: table ``idx_string``."""

    name: str = "string"
    table: str = "idx_string"
    columns: tuple[tuple[str, str], ...] = (("norm", "text"), ("exact", "text"))
    modifiers: frozenset[str] = frozenset({"exact", "contains", "text"})

    def rows(self, p: int, nodes: Sequence[Node], ctx: SearchContext) -> list[tuple[Any, ...]]:
        """One ``(p, norm, exact)`` row per distinct non-blank piece of text."""
        out: list[tuple[Any, ...]] = []
        seen: set[str] = set()
        for node in nodes:
            for text in texts(node):
                if not text.strip() or text in seen:
                    continue
                seen.add(text)
                out.append((p, clip(normalize(text)), clip(text)))
        return out

    def predicate(self, p: int, modifier: str | None, values: Sequence[str],
                  alias: sql.Identifier, ctx: SearchContext) -> Fragment:
        """Rows of ``alias`` matching any of ``values`` under ``modifier``."""
        if modifier is not None and modifier not in self.modifiers:
            raise BadRequest(f"modifier :{modifier} is not supported on string parameters"
                             " (use :exact, :contains or :text)")
        norm = sql.SQL("{}.norm").format(alias)
        parts: list[sql.Composable] = []
        params: list[Any] = [p]
        for raw in values:
            text = unescape(raw)
            if modifier == "exact":
                parts.append(sql.SQL("{}.exact = %s").format(alias))
                params.append(clip(text))
            elif modifier == "contains":
                parts.append(sql.SQL("{} LIKE %s").format(norm))
                params.append(f"%{like_escape(clip(normalize(text)))}%")
            elif modifier == "text" and normalize(text):
                words = [like_escape(w) for w in normalize(text).split()]
                # A word starts the value or follows a space (normalize collapses blanks).
                parts.append(sql.SQL(" AND ").join(
                    sql.SQL("({0} LIKE %s OR {0} LIKE %s)").format(norm) for _ in words))
                for word in words:
                    params.extend([f"{word}%", f"% {word}%"])
            else:
                parts.append(sql.SQL("{} LIKE %s").format(norm))
                params.append(f"{like_escape(clip(normalize(text)))}%")
        if not parts:
            raise BadRequest("a string parameter needs a value")
        return sql.SQL("({}.p = %s AND ({}))").format(
            alias, sql.SQL(" OR ").join(parts)), params

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """Alphabetically by folded text: the smallest ascending, the largest descending."""
        if descending:
            return sql.SQL("max({}.norm)").format(alias)
        return sql.SQL("min({}.norm)").format(alias)


#: The string index type.
STRING = StringIndex()
