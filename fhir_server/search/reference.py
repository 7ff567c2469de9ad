"""Reference search parameters (``idx_reference``) and the joins chains and includes use.

A row is either local (``target_type``/``target_id``, ``version`` for ``/_history/v``)
or external (``url``, with the canonical ``|version`` or a foreign ``/_history/v`` in
``version``). References to this server's own base URL are stored as local ones, so
``Patient/1`` and ``[base]/Patient/1`` match each other both ways. Contained (``#x``)
references and logical references (``identifier`` only) have no row; the identifiers of
References are indexed as tokens under :func:`identifier_param_key` for ``:identifier``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Fragment, Node, SearchContext, split_escaped, unescape
from fhir_server.search.hashing import param_key
from fhir_server.search.token import col, join_or
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


def _local_part(value: str, base_url: str) -> str | None:
    base = base_url.rstrip("/")
    if base and value.startswith(base + "/"):
        return value[len(base) + 1:]
    return None


def parse_reference(ref: str, base_url: str) -> Target | None:
    """Parse ``Reference.reference``; None for contained (``#id``) and empty references."""
    if not ref or ref.startswith("#"):
        return None
    local = _local_part(ref, base_url)
    if local is None and _ABSOLUTE.fullmatch(ref):
        tail = _HISTORY_TAIL.fullmatch(ref)
        return Target(url=tail[1], version=tail[2]) if tail else Target(url=ref)
    match = _RELATIVE.fullmatch(local if local is not None else ref)
    if match is None:  # keep odd literals findable by their exact text
        return Target(url=ref)
    return Target(match[1], match[2], match[3])


def parse_canonical(value: str, base_url: str) -> Target:
    """Parse a canonical (``url|version``); a canonical on this server is also local."""
    url, version = split_canonical(value)
    local = _local_part(url, base_url)
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


@dataclass
class _Values:
    """Search values sorted by how they are matched (so long lists become arrays)."""

    typed: dict[str, list[str]]
    ids: list[str]
    versioned: list[tuple[str, str, str]]
    urls: list[str]
    url_versions: list[tuple[str, str]]


class ReferenceIndex:
    """The ``reference`` parameter type (``idx_reference``)."""

    name = "reference"
    table = "idx_reference"
    columns: tuple[tuple[str, str], ...] = (
        ("target_type", "text"), ("target_id", "text"), ("version", "text"), ("url", "text"))
    #: ``:[type]`` modifiers (any resource type name) are understood as well.
    modifiers = frozenset({"below"})

    def rows(self, p: int, nodes: Sequence[Node], ctx: SearchContext) -> list[tuple[Any, ...]]:
        """Rows for Reference nodes and canonical/uri values."""
        out: list[tuple[Any, ...]] = []
        for node in nodes:
            target: Target | None = None
            if node.type == "Reference" and isinstance(node.value, dict):
                ref = node.value.get("reference")
                target = parse_reference(ref, ctx.base_url) if isinstance(ref, str) else None
            elif node.type in _CANONICAL_TYPES and isinstance(node.value, str) and node.value:
                target = parse_canonical(node.value, ctx.base_url)
            if target is not None:
                out.append((p, target.type, target.id, target.version, target.url))
        return list(dict.fromkeys(out))

    def predicate(self, p: int, modifier: str | None, values: Sequence[str],
                  alias: sql.Identifier, ctx: SearchContext) -> Fragment:
        """``[id]``, ``[type]/[id]``, ``.../_history/[v]``, ``[url]``, ``[url]|[version]``.

        ``:[type]`` restricts ids to that type; ``:below`` on a canonical URL ignores the
        version, or with ``url|1`` matches version ``1`` and ``1.*``. An id alone matches
        the single type in ``ctx.targets``, else any type among them (or any at all).
        ``:identifier`` is answered by the token index, not here (see module doc).
        """
        if modifier == "below":
            return _canonical_below(p, values, alias)
        if modifier == "identifier":
            raise ValueError(":identifier is a token search on identifier_param_key(...)")
        if modifier is not None:
            if not _TYPE_RE.fullmatch(modifier):
                raise BadRequest(f"reference modifier :{modifier} is not supported")
            if ctx.targets and modifier not in ctx.targets:
                raise BadRequest(f":{modifier} is not a target type of this parameter "
                                 f"({', '.join(ctx.targets)})")
        targets = (modifier,) if modifier is not None else ctx.targets
        sorted_values = _Values({}, [], [], [], [])
        for raw in values:
            _classify(raw, modifier, ctx.base_url, sorted_values)
        if sorted_values.ids and len(targets) == 1:
            sorted_values.typed.setdefault(targets[0], []).extend(sorted_values.ids)
            sorted_values.ids = []
        cond = join_or(_conditions(sorted_values, targets, alias))
        return sql.SQL("{} = %s AND {}").format(col(alias, "p"), cond[0]), [p, *cond[1]]

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """The smallest ``Type/id`` (or URL) ascending, the largest descending."""
        return sql.SQL("{}(coalesce({} || '/' || {}, {}))").format(
            sql.SQL("max" if descending else "min"), col(alias, "target_type"),
            col(alias, "target_id"), col(alias, "url"))


def _classify(raw: str, modifier: str | None, base_url: str, out: _Values) -> None:
    parts = split_escaped(raw, "|")
    value = unescape(parts[0])
    version = unescape(parts[1]) if len(parts) == 2 and parts[1] else None
    if len(parts) > 2 or not value:
        raise BadRequest(f"reference: {raw!r} is not a valid reference value")
    local = _local_part(value, base_url)
    if local is None and _ABSOLUTE.fullmatch(value):
        if modifier is not None:
            raise BadRequest(f":{modifier} cannot be used with the external URL {value!r}")
        tail = _HISTORY_TAIL.fullmatch(value)
        if tail and version is None:
            out.url_versions.append((tail[1], tail[2]))
        elif version is not None:
            out.url_versions.append((value, version))
        else:
            out.urls.append(value)
        return
    if local is not None and version is not None:  # a canonical on this server, versioned
        out.url_versions.append((value, version))
        return
    if local is not None:  # canonical URLs on this server are stored with their url too
        out.urls.append(value)
    relative = local if local is not None else value
    if "/" not in relative:
        if local is None:  # [base]/x is no id search, only its url
            out.ids.append(relative)
        return
    match = _RELATIVE.fullmatch(relative)
    if match is None:
        raise BadRequest(f"reference: {value!r} is not [type]/[id], [id] or a URL")
    if modifier is not None and match[1] != modifier:
        raise BadRequest(f"reference: {value!r} is not a {modifier}")
    if match[3] is not None:
        out.versioned.append((match[1], match[2], match[3]))
    else:
        out.typed.setdefault(match[1], []).append(match[2])


def _conditions(values: _Values, targets: Sequence[str],
                alias: sql.Identifier) -> list[Fragment]:
    ttype, tid, ver, url = (col(alias, c) for c in ("target_type", "target_id", "version",
                                                     "url"))
    parts: list[Fragment] = []
    for rtype, ids in values.typed.items():
        parts.append((sql.SQL("({} = %s AND {} = ANY(%s::text[]))").format(ttype, tid),
                      [rtype, list(dict.fromkeys(ids))]))
    if values.ids:
        ids = list(dict.fromkeys(values.ids))
        if targets:
            parts.append((sql.SQL("({} = ANY(%s::text[]) AND {} = ANY(%s::text[]))").format(
                ttype, tid), [list(targets), ids]))
        else:
            parts.append((sql.SQL("{} = ANY(%s::text[])").format(tid), [ids]))
    if values.versioned:
        columns = [list(x) for x in zip(*values.versioned, strict=True)]
        parts.append((sql.SQL(
            "({}, {}, {}) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))"
        ).format(ttype, tid, ver), columns))
    if values.urls:
        parts.append((sql.SQL("{} = ANY(%s::text[])").format(url),
                      [list(dict.fromkeys(values.urls))]))
    if values.url_versions:
        columns = [list(x) for x in zip(*values.url_versions, strict=True)]
        parts.append((sql.SQL("({}, {}) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
                              ).format(url, ver), columns))
    return parts


def _canonical_below(p: int, values: Sequence[str], alias: sql.Identifier) -> Fragment:
    url, ver = col(alias, "url"), col(alias, "version")
    parts: list[Fragment] = []
    for raw in values:
        pieces = [unescape(x) for x in split_escaped(raw, "|")]
        if len(pieces) > 2 or not _ABSOLUTE.fullmatch(pieces[0]):
            raise BadRequest(f"reference :below is only supported on canonical URLs "
                             f"(url or url|version), not {raw!r}")
        if len(pieces) == 1 or not pieces[1]:
            parts.append((sql.SQL("{} = %s").format(url), [pieces[0]]))
        else:
            version = pieces[1]
            pattern = version.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            parts.append((sql.SQL("({} = %s AND ({} = %s OR {} LIKE %s))").format(
                url, ver, ver), [pieces[0], version, pattern + ".%"]))
    cond = join_or(parts)
    return sql.SQL("{} = %s AND {}").format(col(alias, "p"), cond[0]), [p, *cond[1]]


# -- joins for chaining, _has and _include ------------------------------------------------

def target_join(ref: sql.Identifier, target: sql.Identifier) -> sql.Composable:
    """The reference row ``ref`` points at the resource row ``target`` (chain, _include)."""
    return sql.SQL("{t}.resource_type = {r}.target_type AND {t}.id = {r}.target_id").format(
        t=target, r=ref)


def source_join(ref: sql.Identifier, source: sql.Identifier) -> sql.Composable:
    """The reference row ``ref`` belongs to the resource row ``source`` (_has, _revinclude)."""
    return sql.SQL("{s}.rid = {r}.rid").format(s=source, r=ref)


def chain_exists(p: int, res: sql.Composable, target_types: Sequence[str],
                 ref: sql.Identifier, target: sql.Identifier, inner: Fragment) -> Fragment:
    """``res`` refers, through parameter ``p``, to a live ``target`` satisfying ``inner``."""
    return sql.SQL(
        "EXISTS (SELECT 1 FROM idx_reference {r} JOIN resource {t} ON {join}"
        " WHERE {r}.rid = {res}.rid AND {r}.p = %s AND {r}.target_type = ANY(%s::text[])"
        " AND NOT {t}.deleted AND {inner})"
    ).format(r=ref, t=target, join=target_join(ref, target), res=res, inner=inner[0]), [
        p, list(target_types), *inner[1]]


def has_exists(p: int, res: sql.Composable, ref: sql.Identifier, source: sql.Identifier,
               inner: Fragment) -> Fragment:
    """Some live ``source`` satisfying ``inner`` refers to ``res`` through parameter ``p``."""
    return sql.SQL(
        "EXISTS (SELECT 1 FROM idx_reference {r} JOIN resource {s} ON {join}"
        " WHERE {r}.p = %s AND {r}.target_type = {res}.resource_type"
        " AND {r}.target_id = {res}.id AND NOT {s}.deleted AND {inner})"
    ).format(r=ref, s=source, join=source_join(ref, source), res=res, inner=inner[0]), [
        p, *inner[1]]


def include_query(params: Sequence[int], rids: Sequence[int],
                  target_type: str | None = None) -> Fragment:
    """``SELECT rid`` of the live resources that ``rids`` refer to through ``params``."""
    r, t = sql.Identifier("r"), sql.Identifier("t")
    query = sql.SQL(
        "SELECT DISTINCT {t}.rid FROM idx_reference {r} JOIN resource {t} ON {join}"
        " WHERE {r}.rid = ANY(%s::bigint[]) AND {r}.p = ANY(%s::bigint[]) AND NOT {t}.deleted"
    ).format(r=r, t=t, join=target_join(r, t))
    args: list[Any] = [list(rids), list(params)]
    if target_type is not None:
        query = sql.SQL("{} AND {}.resource_type = %s").format(query, t)
        args.append(target_type)
    return query, args


def revinclude_query(params: Sequence[int], rids: Sequence[int]) -> Fragment:
    """``SELECT rid`` of the live resources referring to ``rids`` through ``params``."""
    r, t, s = sql.Identifier("r"), sql.Identifier("t"), sql.Identifier("s")
    return sql.SQL(
        "SELECT DISTINCT {s}.rid FROM resource {t} JOIN idx_reference {r} ON {tj}"
        " JOIN resource {s} ON {sj} WHERE {t}.rid = ANY(%s::bigint[])"
        " AND {r}.p = ANY(%s::bigint[]) AND NOT {s}.deleted"
    ).format(r=r, t=t, s=s, tj=target_join(r, t), sj=source_join(r, s)), [
        list(rids), list(params)]


#: The reference index type.
REFERENCE = ReferenceIndex()
