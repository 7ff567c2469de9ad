"""Reference values as conditions on ``idx_reference`` rows: local targets by type and
id (maybe versioned), external and canonical URLs by ``url`` (and ``version``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.search.reference import ReferenceValue
from fhir_server.storage.sql.common import Fragment, ParamKey, col, join_or, like_escape, p_is


class ReferenceSql:
    """``idx_reference``."""

    table = "idx_reference"

    def predicate(self, p: ParamKey, modifier: str | None, values: Sequence[Any],
                  alias: sql.Identifier) -> Fragment:
        """A row of parameter ``p`` pointing where any of ``values`` says."""
        refs = [v for v in values if isinstance(v, ReferenceValue)]
        parts = _local(refs, alias) + _external(refs, alias)
        cond = join_or(parts)
        key = p_is(alias, p)
        return sql.SQL("{} AND {}").format(key[0], cond[0]), [*key[1], *cond[1]]

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """The smallest ``Type/id`` (or URL) ascending, the largest descending."""
        return sql.SQL("{}(coalesce({} || '/' || {}, {}))").format(
            sql.SQL("max" if descending else "min"), col(alias, "target_type"),
            col(alias, "target_id"), col(alias, "url"))


def _local(refs: Sequence[ReferenceValue], alias: sql.Identifier) -> list[Fragment]:
    ttype, tid, ver = (col(alias, c) for c in ("target_type", "target_id", "version"))
    parts: list[Fragment] = []
    typed: dict[str, list[str]] = {}
    for ref in refs:
        for rtype, rid in ref.typed:
            typed.setdefault(rtype, []).append(rid)
    for rtype, ids in typed.items():
        parts.append((sql.SQL("({} = %s AND {} = ANY(%s::text[]))").format(ttype, tid),
                      [rtype, list(dict.fromkeys(ids))]))
    by_targets: dict[tuple[str, ...], list[str]] = {}
    for ref in refs:
        if ref.ids:
            by_targets.setdefault(ref.targets, []).extend(ref.ids)
    for targets, ids in by_targets.items():
        ids = list(dict.fromkeys(ids))
        if targets:
            parts.append((sql.SQL("({} = ANY(%s::text[]) AND {} = ANY(%s::text[]))").format(
                ttype, tid), [list(targets), ids]))
        else:
            parts.append((sql.SQL("{} = ANY(%s::text[])").format(tid), [ids]))
    versioned = [v for ref in refs for v in ref.versioned]
    if versioned:
        columns = [list(x) for x in zip(*versioned, strict=True)]
        parts.append((sql.SQL(
            "({}, {}, {}) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))"
        ).format(ttype, tid, ver), columns))
    return parts


def _external(refs: Sequence[ReferenceValue], alias: sql.Identifier) -> list[Fragment]:
    url, ver = col(alias, "url"), col(alias, "version")
    parts: list[Fragment] = []
    urls = list(dict.fromkeys(u for ref in refs for u in ref.urls))
    if urls:
        parts.append((sql.SQL("{} = ANY(%s::text[])").format(url), [urls]))
    url_versions = [v for ref in refs for v in ref.url_versions]
    if url_versions:
        columns = [list(x) for x in zip(*url_versions, strict=True)]
        parts.append((sql.SQL("({}, {}) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
                              ).format(url, ver), columns))
    for below_url, version in (b for ref in refs for b in ref.below):
        if version is None:
            parts.append((sql.SQL("{} = %s").format(url), [below_url]))
        else:
            parts.append((sql.SQL("({} = %s AND ({} = %s OR {} LIKE %s))").format(
                url, ver, ver), [below_url, version, like_escape(version) + ".%"]))
    return parts


REFERENCE = ReferenceSql()


def contained_row_key_sql(key: int, local_ref: sql.Composable) -> Fragment:
    """SQL of :func:`~fhir_server.search.hashing.contained_row_key` of ``key`` and the
    ``#id`` that ``local_ref`` gives."""
    return sql.SQL("('x' || left(md5(%s || {}), 16))::bit(64)::bigint").format(
        local_ref), [str(key)]
