"""Reference search parameters (``idx_reference``): rows and search values.

A row is either local (``target_type``/``target_id``, ``version`` for ``/_history/v``)
or external (``url``, with the canonical ``|version`` or a foreign ``/_history/v`` in
``version``). References to this server's own base URL are stored as local ones, so
``Patient/1`` and ``[base]/Patient/1`` match each other both ways. A contained (``#x``)
reference has a row with ``url = '#x'`` and the contained resource's type in
``target_type`` (no ``target_id``): it is not ``:missing``, and chains follow it into the
contained resource's own rows (``fhir_server.search.index``). Logical references
(``identifier`` only) have no row; the identifiers of References are indexed as tokens
under :func:`identifier_param_key` for ``:identifier``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext, split_escaped, unescape
from fhir_server.search.hashing import param_key
from fhir_server.search.uri import split_canonical

_TYPE = r"[A-Z][A-Za-z]+"
_ID = r"[A-Za-z0-9\-.]{1,64}"
_TYPE_RE = re.compile(_TYPE)
_RELATIVE = re.compile(rf"({_TYPE})/({_ID})(?:/_history/({_ID}))?")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:.+")
_HISTORY_TAIL = re.compile(rf"(.+/{_TYPE}/{_ID})/_history/({_ID})")
_CANONICAL_TYPES = frozenset({"canonical", "uri", "url", "oid", "uuid"})


@dataclass(frozen=True, slots=True)
class Target:
    """Where a reference points: a local type/id (maybe versioned) or an external URL."""

    type: str | None = None
    id: str | None = None
    version: str | None = None
    url: str | None = None


def local_part(value: str, bases: Sequence[str]) -> str | None:
    """``Type/id...`` of an absolute URL on one of this server's ``bases``, else None."""
    for base in bases:
        if base and value.startswith(base) and value[len(base):len(base) + 1] == "/":
            return value[len(base) + 1:]
    return None


def parse_reference(ref: str, bases: Sequence[str]) -> Target | None:
    """Parse ``Reference.reference``; None for contained (``#id``) and empty references."""
    if not ref or ref.startswith("#"):
        return None
    local = local_part(ref, bases)
    if local is None and _ABSOLUTE.fullmatch(ref):
        tail = _HISTORY_TAIL.fullmatch(ref)
        return Target(url=tail[1], version=tail[2]) if tail else Target(url=ref)
    match = _RELATIVE.fullmatch(local if local is not None else ref)
    if match is None:  # keep odd literals findable by their exact text
        return Target(url=ref)
    return Target(match[1], match[2], match[3])


def parse_canonical(value: str, bases: Sequence[str]) -> Target:
    """Parse a canonical (``url|version``); a canonical on this server is also local."""
    url, version = split_canonical(value)
    local = local_part(url, bases)
    match = _RELATIVE.fullmatch(local) if local is not None else None
    if match is not None and match[3] is None:
        return Target(match[1], match[2], version, url)
    return Target(url=url, version=version)


def identifier_nodes(nodes: Sequence[Node]) -> list[Node]:
    """The ``identifier`` of every Reference among ``nodes``, as Identifier nodes.

    The caller indexes them as tokens under :func:`identifier_param_key` to answer
    ``:identifier`` (logical references have no other row; literal ones with an
    identifier are findable both ways).
    """
    return [Node(n.value["identifier"], "Identifier") for n in nodes
            if n.type == "Reference" and isinstance(n.value, dict)
            and isinstance(n.value.get("identifier"), dict)]


def identifier_param_key(resource_type: str, code: str) -> int:
    """The ``p`` of the token rows answering ``code:identifier`` on ``resource_type``."""
    return param_key(resource_type, f"{code}:identifier")


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """One reference search value, by how it is matched (several ways may apply: a URL
    on this server is matched as a local reference and as a canonical URL)."""

    #: (type, id) of local references
    typed: tuple[tuple[str, str], ...] = ()
    #: bare ids: any of ``targets`` (any type at all when empty)
    ids: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    #: (type, id, version) of ``Type/id/_history/v``
    versioned: tuple[tuple[str, str, str], ...] = ()
    urls: tuple[str, ...] = ()
    #: (url, version) of canonicals ``url|v`` and foreign ``.../_history/v``
    url_versions: tuple[tuple[str, str], ...] = ()
    #: ``:below`` on canonicals: (url, version or None)
    below: tuple[tuple[str, str | None], ...] = ()


class ReferenceType:
    """The ``reference`` parameter type (``idx_reference``)."""

    name = "reference"
    columns: tuple[tuple[str, str], ...] = (
        ("target_type", "text"), ("target_id", "text"), ("version", "text"), ("url", "text"))
    #: ``:[type]`` modifiers (any target type name) are understood as well, and
    #: ``:identifier``, which is answered by token rows (see :func:`identifier_param_key`).
    modifiers = frozenset({"below", "identifier"})

    def rows(self, p: int, nodes: list[Node], ctx: IndexContext) -> list[tuple[Any, ...]]:
        """Rows for Reference nodes and canonical/uri values."""
        out: list[tuple[Any, ...]] = []
        for node in nodes:
            target: Target | None = None
            if node.type == "Reference" and isinstance(node.value, dict):
                ref = node.value.get("reference")
                if isinstance(ref, str) and ref.startswith("#"):
                    target = Target(type=dict(ctx.contained).get(ref[1:]), url=ref)
                else:
                    target = parse_reference(ref, ctx.bases) if isinstance(ref, str) else None
            elif node.type in _CANONICAL_TYPES and isinstance(node.value, str) and node.value:
                target = parse_canonical(node.value, ctx.bases)
            if target is not None:
                out.append((p, target.type, target.id, target.version, target.url))
        return list(dict.fromkeys(out))

    def parse(self, p: int, modifier: str | None, raw: str,
              ctx: ParseContext) -> ReferenceValue:
        """``[id]``, ``[type]/[id]``, ``.../_history/[v]``, ``[url]``, ``[url]|[version]``.

        ``:[type]`` restricts ids to that type (``ctx.targets`` are the parameter's
        targets); ``:below`` on a canonical URL ignores the version, or with ``url|1``
        matches version ``1`` and ``1.*``. An id alone matches the single type among the
        targets, else any of them (or any type at all). ``:identifier`` is a token search
        and parsed as one by the caller.
        """
        if modifier == "below":
            return ReferenceValue(below=(_canonical_below(raw),))
        if modifier is not None:
            if modifier == "identifier" or not _TYPE_RE.fullmatch(modifier):
                raise BadRequest(f"reference modifier :{modifier} is not supported")
            if ctx.targets and modifier not in ctx.targets:
                raise BadRequest(f":{modifier} is not a target type of this parameter "
                                 f"({', '.join(ctx.targets)})")
        targets = (modifier,) if modifier is not None else ctx.targets
        return _classify(raw, modifier, ctx.bases, targets)


def _classify(raw: str, modifier: str | None, bases: Sequence[str],
              targets: tuple[str, ...]) -> ReferenceValue:
    parts = split_escaped(raw, "|")
    value = unescape(parts[0])
    version = unescape(parts[1]) if len(parts) == 2 and parts[1] else None
    if len(parts) > 2 or not value:
        raise BadRequest(f"reference: {raw!r} is not a valid reference value")
    local = local_part(value, bases)
    if local is None and _ABSOLUTE.fullmatch(value):
        if modifier is not None:
            raise BadRequest(f":{modifier} cannot be used with the external URL {value!r}")
        tail = _HISTORY_TAIL.fullmatch(value)
        if tail and version is None:
            return ReferenceValue(url_versions=((tail[1], tail[2]),))
        if version is not None:
            return ReferenceValue(url_versions=((value, version),))
        return ReferenceValue(urls=(value,))
    if local is not None and version is not None:  # a canonical on this server, versioned
        return ReferenceValue(url_versions=((value, version),))
    # Canonical URLs on this server are stored with their url too.
    urls = (value,) if local is not None else ()
    relative = local if local is not None else value
    if "/" not in relative:
        if local is not None:  # [base]/x is no id search, only its url
            return ReferenceValue(urls=urls)
        if len(targets) == 1:
            return ReferenceValue(typed=((targets[0], relative),))
        return ReferenceValue(ids=(relative,), targets=targets)
    match = _RELATIVE.fullmatch(relative)
    if match is None:
        raise BadRequest(f"reference: {value!r} is not [type]/[id], [id] or a URL")
    if modifier is not None and match[1] != modifier:
        raise BadRequest(f"reference: {value!r} is not a {modifier}")
    if match[3] is not None:
        return ReferenceValue(versioned=((match[1], match[2], match[3]),), urls=urls)
    return ReferenceValue(typed=((match[1], match[2]),), urls=urls)


def _canonical_below(raw: str) -> tuple[str, str | None]:
    pieces = [unescape(x) for x in split_escaped(raw, "|")]
    if len(pieces) > 2 or not _ABSOLUTE.fullmatch(pieces[0]):
        raise BadRequest(f"reference :below is only supported on canonical URLs "
                         f"(url or url|version), not {raw!r}")
    return pieces[0], (pieces[1] or None) if len(pieces) == 2 else None


#: The reference parameter type.
REFERENCE = ReferenceType()
