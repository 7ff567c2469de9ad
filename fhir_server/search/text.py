"""Full-text search: ``_text`` (the narrative) and ``_content`` (the resource's text).

Every write stores one ``idx_text`` row per resource (see ``migrations/V5__text_search``):
the text of its narrative and the text of its content, which PostgreSQL turns into
``tsvector`` values with the text search configuration of ``SEARCH_TEXT_LANGUAGE``
(``english`` stems, ``simple`` does not). Searches match them with
``websearch_to_tsquery`` in the same configuration, so a value is a search expression:
words (all must occur, in any form the stemmer folds together), ``"quoted phrases"``,
``or``, and ``-word`` for a word that must not occur.

What is extracted:

- narrative (``_text``): ``text.div`` without its XHTML tags, comments and entities;
- content (``_content``): every string of the resource (its contained resources
  included) except the narrative (searched by ``_text``), ``meta``, ids, references,
  URLs and other URIs, codes and statuses, dates and times, and attachment data: what a
  person reads (names, addresses, texts, displays, notes, identifiers' values), not its
  machinery (``Patient?_content=final`` would otherwise find every final result).

Each part is cut at :data:`MAX_CHARS` characters (PostgreSQL's ``tsvector`` holds at most
1 MB), so odd data never blocks a write.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fhir_server.errors import BadRequest

#: The search parameters answered from ``idx_text``.
TEXT_PARAMS = frozenset({"_text", "_content"})
#: The text search configuration used when none is set.
DEFAULT_CONFIG = "english"
#: Longest text (characters) indexed per part of a resource.
MAX_CHARS = 200_000

#: Keys whose string values are machinery, not text (at any depth).
SKIP_KEYS = frozenset({
    "resourceType", "id", "meta", "div", "status", "url", "system", "reference",
    "code", "version", "language", "contentType", "data", "hash", "fullUrl", "profile",
    "use", "gender", "valueCode", "valueId", "valueUri", "valueUrl", "valueCanonical",
    "valueOid", "valueUuid", "valueBase64Binary", "valueDate", "valueDateTime",
    "valueInstant", "valueTime",
})
_CONFIG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_URI = re.compile(r"(https?|urn|ftp|mailto|file):", re.IGNORECASE)
_DATE = re.compile(r"\d{4}(-\d\d(-\d\d)?)?(T\d\d(:\d\d(:\d\d(\.\d+)?)?)?"
                   r"(Z|[+-]\d\d:\d\d)?)?|\d\d:\d\d(:\d\d(\.\d+)?)?")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def valid_config_name(name: str) -> bool:
    """Whether ``name`` can name a text search configuration (``english``,
    ``pg_catalog.german``): an identifier, maybe schema-qualified."""
    return _CONFIG_NAME.fullmatch(name) is not None


def narrative_text(resource: dict[str, Any]) -> str | None:
    """The narrative's text: ``text.div`` without markup (None: no narrative)."""
    narrative = resource.get("text")
    div = narrative.get("div") if isinstance(narrative, dict) else None
    if not isinstance(div, str):
        return None
    plain = html.unescape(_TAG.sub(" ", _COMMENT.sub(" ", div)))
    plain = _SPACE.sub(" ", plain).strip()
    return plain[:MAX_CHARS] or None


# The same strings recur across resources (codes' displays, statuses): cached.
@lru_cache(maxsize=1 << 16)
def _readable(text: str) -> bool:
    """Whether a stripped, non-empty string is text to index (not a URI or a date)."""
    return not _URI.match(text) and not _DATE.fullmatch(text)


def content_text(resource: dict[str, Any]) -> str | None:
    """The resource's readable strings, one per line, in document order (None: none)."""
    out: list[str] = []
    size = 0
    # Depth first with an explicit stack (children pushed reversed: document order).
    stack: list[Any] = [resource]
    while stack and size < MAX_CHARS:
        value = stack.pop()
        if isinstance(value, str):
            text = value.strip()
            if text and _readable(text):
                out.append(text)
                size += len(text) + 1
        elif isinstance(value, dict):
            stack.extend(reversed([v for k, v in value.items() if k not in SKIP_KEYS]))
        elif isinstance(value, list):
            stack.extend(reversed(value))
    joined = "\n".join(out)[:MAX_CHARS]
    return joined or None


def text_row(resource: dict[str, Any], config: str) -> dict[str, Any] | None:
    """The ``idx_text`` row of a resource (None: it has no text at all).

    The ``*_source`` columns are input only: the table's trigger turns them into the
    ``narrative`` and ``content`` vectors in ``config`` and does not keep them.
    """
    narrative, content = narrative_text(resource), content_text(resource)
    if narrative is None and content is None:
        return None
    return {"config": config, "narrative_source": narrative, "content_source": content}


@dataclass(frozen=True)
class TextQuery:
    """One search expression of ``_text``/``_content`` and the configuration to read it
    in (``websearch_to_tsquery(config, expression)``)."""

    config: str
    expression: str


def parse_text_values(code: str, modifier: str | None, raw: Sequence[str],
                      config: str) -> tuple[TextQuery, ...]:
    """The OR values of ``_text``/``_content``; BadRequest for a modifier (``:missing``
    is handled before) or a value with no word in it."""
    if modifier is not None:
        raise BadRequest(f"modifier :{modifier} is not supported on {code} "
                         "(only :missing is)")
    values = []
    for value in raw:
        if not any(c.isalnum() for c in value):
            raise BadRequest(f"{code} needs a word to search for, not {value[:40]!r}")
        values.append(TextQuery(config, value))
    return tuple(values)
