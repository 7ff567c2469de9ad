"""``_text`` and ``_content`` as conditions on a resource's ``idx_text`` row.

The values are ``search.text.TextQuery`` search expressions, read with
``websearch_to_tsquery`` in their configuration (the one the rows were written in);
OR values are one ``tsquery`` joined with ``||``, so one GIN index scan answers them.
``_text:missing`` reads the resource's own ``text.div`` (right before a ``$reindex`` has
filled ``idx_text`` for older resources); every resource has content, so
``_content:missing=true`` matches nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.search.text import TextQuery
from fhir_server.storage.sql.common import Fragment

TABLE = "idx_text"
#: the tsvector column each parameter searches
COLUMNS = {"_text": "narrative", "_content": "content"}


def tsquery(values: Sequence[Any]) -> Fragment:
    """One ``tsquery`` matching any of ``values`` (OR)."""
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for value in values:
        assert isinstance(value, TextQuery)
        parts.append(sql.SQL("websearch_to_tsquery(%s::regconfig, %s)"))
        params += [value.config, value.expression]
    return sql.SQL("({})").format(sql.SQL(" || ").join(parts)), params


def text_condition(code: str, modifier: str | None, values: Sequence[Any],
                   res: sql.Composable, alias: sql.Identifier) -> Fragment:
    """The condition of ``_text``/``_content`` on resource row ``res``."""
    if modifier == "missing":
        if code == "_content":
            return (sql.SQL("false") if values[0] else sql.SQL("true")), []
        present = sql.SQL("({}.content -> 'text' -> 'div') IS NOT NULL").format(res)
        return (sql.SQL("NOT {}").format(present) if values[0] else present), []
    query, params = tsquery(values)
    return sql.SQL(
        "EXISTS (SELECT 1 FROM {t} {a} WHERE {a}.rid = {res}.rid AND {a}.{c} @@ {q})"
    ).format(t=sql.Identifier(TABLE), a=alias, res=res,
             c=sql.Identifier(COLUMNS[code]), q=query), params
