"""URI values as conditions on ``idx_uri`` rows (exact, or by segment prefixes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.search.uri import UriValue
from fhir_server.storage.sql.common import (
    Fragment,
    ParamKey,
    col,
    join_or,
    like_prefix,
    min_max,
    p_is,
)


class UriSql:
    """``idx_uri``."""

    table = "idx_uri"

    def predicate(self, p: ParamKey, modifier: str | None, values: Sequence[Any],
                  alias: sql.Identifier) -> Fragment:
        """A row of parameter ``p`` equal to or starting with what the values say."""
        column = col(alias, "uri")
        equal = list(dict.fromkeys(u for v in values if isinstance(v, UriValue)
                                   for u in v.equal))
        patterns = [like_prefix(s) for v in values for s in v.starts]
        parts: list[Fragment] = [
            (sql.SQL("{} = %s").format(column), [equal[0]]) if len(equal) == 1
            else (sql.SQL("{} = ANY(%s::text[])").format(column), [equal])]
        # One LIKE per value keeps the (p, uri text_pattern_ops) index usable for the
        # usual single value; many values fall back to LIKE ANY.
        if len(patterns) <= 2:
            parts.extend((sql.SQL("{} LIKE %s").format(column), [x]) for x in patterns)
        else:
            parts.append((sql.SQL("{} LIKE ANY(%s::text[])").format(column), [patterns]))
        cond = join_or(parts)
        key = p_is(alias, p)
        return sql.SQL("{} AND {}").format(key[0], cond[0]), [*key[1], *cond[1]]

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """The smallest URI ascending, the largest descending."""
        return min_max(descending, col(alias, "uri"))


URI = UriSql()
