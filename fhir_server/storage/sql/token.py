"""Token values as conditions on ``idx_token`` rows: one hash column compared, so every
form is an equality on an indexed column (see ``fhir_server.search.token``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.search.token import TokenKey, TokenKeys, TokenText
from fhir_server.storage.sql.common import (
    Fragment,
    ParamKey,
    any_of,
    col,
    join_or,
    like_prefix,
    min_max,
    p_is,
)

#: The hash column of each kind of TokenKey.
COLUMNS = {"code": "h_code", "system_code": "h_sys_code", "system": "h_sys",
           "type_value": "h_type_value"}


class TokenSql:
    """``idx_token``."""

    table = "idx_token"

    def predicate(self, p: ParamKey, modifier: str | None, values: Sequence[Any],
                  alias: sql.Identifier) -> Fragment:
        """A row matching any of ``values``. The hashes encode ``p``; ``:text`` compares
        it explicitly. ``:not`` and ``:not-in`` give the *positive* condition: the
        compiler wraps it in ``NOT EXISTS``, so resources without any value match too,
        as the specification says. When ``p`` is an SQL expression (the rows of a
        contained resource), ``alias.p`` is compared too."""
        key = p_is(alias, p)
        texts = [v.text for v in values if isinstance(v, TokenText)]
        if texts:
            patterns = [like_prefix(t) for t in texts]
            if len(patterns) == 1:
                return (sql.SQL("{} AND {} LIKE %s").format(
                    key[0], col(alias, "display")), [*key[1], patterns[0]])
            return (sql.SQL("{} AND {} LIKE ANY(%s::text[])").format(
                key[0], col(alias, "display")), [*key[1], patterns])
        if any(isinstance(v, TokenKeys) for v in values):
            keys = list(dict.fromkeys(k for v in values if isinstance(v, TokenKeys)
                                      for k in v.keys))
            if not keys:  # an empty expansion contains nothing
                return sql.SQL("{} AND false").format(key[0]), key[1]
            cond = any_of(alias, "h_sys_code", keys)
        else:
            by_column: dict[str, list[int]] = {}
            for value in values:
                assert isinstance(value, TokenKey)
                by_column.setdefault(COLUMNS[value.column], []).append(value.key)
            cond = join_or([any_of(alias, c, list(dict.fromkeys(keys)))
                            for c, keys in by_column.items()])
        if isinstance(p, int):
            return cond
        return sql.SQL("{} AND {}").format(key[0], cond[0]), [*key[1], *cond[1]]

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """The smallest code ascending, the largest descending."""
        return min_max(descending, col(alias, "code"))


TOKEN = TokenSql()
