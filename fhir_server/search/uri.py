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

from dataclasses import dataclass
from typing import Any

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext, refuse_modifier, unescape

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


@dataclass(frozen=True, slots=True)
class UriValue:
    """A uri search value: stored URIs equal to one of ``equal`` or starting with one
    of ``starts`` match."""

    equal: tuple[str, ...]
    starts: tuple[str, ...] = ()


class UriType:
    """The ``uri`` parameter type (``idx_uri``)."""

    name = "uri"
    columns: tuple[tuple[str, str], ...] = (("uri", "text"),)
    modifiers = frozenset({"above", "below"})

    def rows(self, p: int, nodes: list[Node], ctx: IndexContext) -> list[tuple[Any, ...]]:
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

    def parse(self, p: int, modifier: str | None, raw: str, ctx: ParseContext) -> UriValue:
        """Exact match, or ``:below`` / ``:above`` on path segments (see module doc)."""
        refuse_modifier(self.name, modifier, self.modifiers)
        uri = unescape(raw)
        if not uri:
            raise BadRequest("uri: empty value")
        if modifier is None:
            return UriValue((uri,))
        if _is_urn(uri):
            raise BadRequest(f"uri modifier :{modifier} applies to URLs, not to URNs "
                             f"such as {uri!r}")
        if modifier == "above":
            return UriValue(tuple(_above(uri)))
        return UriValue((uri,), tuple(_below(uri)))


def _above(uri: str) -> list[str]:
    url, version = split_canonical(uri)
    # A versioned canonical is also "below" its unversioned URL and that URL's parents.
    return segment_prefixes(url) + ([uri] if version is not None else [])


def _below(uri: str) -> list[str]:
    """The prefixes of what lies below ``uri``: its path (``uri/``) and its versions
    (``uri|``); below a versioned canonical ``url|1``: ``url|1.``."""
    if split_canonical(uri)[1] is not None:
        return [f"{uri}."]
    return [uri if uri.endswith("/") else uri + "/", uri + "|"]


#: The uri parameter type.
URI = UriType()
