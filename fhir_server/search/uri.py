"""URI search parameters (``idx_uri``): uri, url, canonical, oid and uuid values.

Matching is exact and case-sensitive. ``:below`` and ``:above`` compare whole path
segments: ``url:below=http://acme.org/fhir`` matches ``http://acme.org/fhir`` and
everything under ``http://acme.org/fhir/``, not ``http://acme.org/fhirx``; ``:above``
matches stored URIs that are the value or one of its segment prefixes. They only apply
to URLs, not to URNs (``urn:oid:``, ``urn:uuid:``), as the spec says.

Canonical values with a version (``url|1.2``) are stored twice: whole and without the
version, so ``url`` finds every version and ``url|1.2`` only that one; ``:below`` with a
version (``url|1``) finds that version and the ones under it (``1.0``, ``1.2.3``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Fragment, Node, SearchContext, unescape
from fhir_server.search.token import col, join_or, like_prefix

#: Node types whose (string) value is a URI.
URI_TYPES = frozenset({"uri", "url", "canonical", "oid", "uuid", "string", "code", "id"})


def split_canonical(value: str) -> tuple[str, str | None]:
    """``url|version`` -> (url, version); (value, None) without a version."""
    url, bar, version = value.partition("|")
    return (url, version) if bar and url and version else (value, None)


def segment_prefixes(value: str) -> list[str]:
    """The value and each of its prefixes ending at a ``/`` after the authority.

    Every prefix appears with and without its trailing slash:
    ``http://a.org/fhir/x`` -> ``http://a.org``, ``http://a.org/``, ``http://a.org/fhir``,
    ``http://a.org/fhir/``, ``http://a.org/fhir/x``.
    """
    scheme = value.find("://")
    start = scheme + 3 if scheme >= 0 else 0
    out: list[str] = []
    for i in range(start, len(value)):
        if value[i] == "/":
            out.extend((value[:i], value[:i + 1]))
    out.append(value)
    return [p for p in dict.fromkeys(out) if len(p) > start]


def _is_urn(value: str) -> bool:
    return value.lower().startswith("urn:")


class UriIndex:
    """The ``uri`` parameter type (``idx_uri``)."""

    name = "uri"
    table = "idx_uri"
    columns: tuple[tuple[str, str], ...] = (("uri", "text"),)
    modifiers = frozenset({"above", "below"})

    def rows(self, p: int, nodes: Sequence[Node], ctx: SearchContext) -> list[tuple[Any, ...]]:
        """One row per URI value; canonical values with a version also without it."""
        out: list[tuple[Any, ...]] = []
        for node in nodes:
            if node.type not in URI_TYPES or not isinstance(node.value, str) or not node.value:
                continue
            out.append((p, node.value))
            if node.type == "canonical":
                url, version = split_canonical(node.value)
                if version is not None:
                    out.append((p, url))
        return list(dict.fromkeys(out))

    def predicate(self, p: int, modifier: str | None, values: Sequence[str],
                  alias: sql.Identifier, ctx: SearchContext) -> Fragment:
        """Exact match, or ``:below`` / ``:above`` on path segments (see module doc)."""
        uris = [_unescaped(v) for v in values]
        column = col(alias, "uri")
        if modifier is None:
            cond: Fragment = ((sql.SQL("{} = %s").format(column), [uris[0]]) if len(uris) == 1
                              else (sql.SQL("{} = ANY(%s::text[])").format(column), [uris]))
        elif modifier == "above":
            _no_urn(uris, modifier)
            prefixes = list(dict.fromkeys(x for u in uris for x in _above(u)))
            cond = sql.SQL("{} = ANY(%s::text[])").format(column), [prefixes]
        elif modifier == "below":
            _no_urn(uris, modifier)
            cond = _below(column, uris)
        else:
            raise BadRequest(f"unknown uri modifier :{modifier}")
        return (sql.SQL("{} = %s AND {}").format(col(alias, "p"), cond[0]), [p, *cond[1]])

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """The smallest URI ascending, the largest descending."""
        return sql.SQL("{}({})").format(sql.SQL("max" if descending else "min"),
                                        col(alias, "uri"))


def _unescaped(raw: str) -> str:
    value = unescape(raw)
    if not value:
        raise BadRequest("uri: empty value")
    return value


def _no_urn(uris: Sequence[str], modifier: str) -> None:
    for uri in uris:
        if _is_urn(uri):
            raise BadRequest(f"uri modifier :{modifier} applies to URLs, not to URNs "
                             f"such as {uri!r}")


def _above(uri: str) -> list[str]:
    url, version = split_canonical(uri)
    # A versioned canonical is also "below" its unversioned URL and that URL's parents.
    return segment_prefixes(url) + ([uri] if version is not None else [])


def _below(column: sql.Composable, uris: Sequence[str]) -> Fragment:
    exact: list[str] = []
    patterns: list[str] = []
    for uri in uris:
        version = split_canonical(uri)[1]
        exact.append(uri)
        if version is not None:  # url|1 -> url|1, url|1.x...
            patterns.append(like_prefix(f"{uri}."))
            continue
        patterns.append(like_prefix(uri if uri.endswith("/") else uri + "/"))
        patterns.append(like_prefix(uri + "|"))
    parts: list[Fragment] = [(sql.SQL("{} = ANY(%s::text[])").format(column), [exact])]
    # One LIKE per value keeps the (p, uri text_pattern_ops) index usable for the usual
    # single value; many values fall back to LIKE ANY.
    if len(patterns) <= 2:
        parts.extend((sql.SQL("{} LIKE %s").format(column), [x]) for x in patterns)
    else:
        parts.append((sql.SQL("{} LIKE ANY(%s::text[])").format(column), [patterns]))
    return join_or(parts)


#: The uri index type.
URI = UriIndex()
