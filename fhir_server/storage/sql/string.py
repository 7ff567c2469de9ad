"""String values as conditions on ``idx_string`` rows (``norm`` folded, ``exact`` as
written; see ``fhir_server.search.string`` for the matching rules)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from fhir_server.search.string import StringValue
from fhir_server.storage.sql.common import Fragment, ParamKey, col, like_escape, min_max, p_is


class StringSql:
    """``idx_string``."""

    table = "idx_string"

    def predicate(self, p: ParamKey, modifier: str | None, values: Sequence[Any],
                  alias: sql.Identifier) -> Fragment:
        """A row of parameter ``p`` matching any of ``values``."""
        norm = col(alias, "norm")
        parts: list[sql.Composable] = []
        key = p_is(alias, p, quoted=False)
        params: list[Any] = list(key[1])
        for value in values:
            assert isinstance(value, StringValue)
            if value.mode == "exact":
                # (rows of family name parts have an empty exact: never a match)
                parts.append(sql.SQL("({0} = %s AND {0} <> '')").format(col(alias, "exact")))
                params.append(value.text)
            elif value.mode == "contains":
                parts.append(sql.SQL("{} LIKE %s").format(norm))
                params.append(f"%{like_escape(value.text)}%")
            elif value.mode == "text":
                words = [like_escape(w) for w in value.words]
                # A word starts the value or follows a space (normalize collapses blanks).
                parts.append(sql.SQL(" AND ").join(
                    sql.SQL("({0} LIKE %s OR {0} LIKE %s)").format(norm) for _ in words))
                for word in words:
                    params.extend([f"{word}%", f"% {word}%"])
            else:
                parts.append(sql.SQL("{} LIKE %s").format(norm))
                params.append(f"{like_escape(value.text)}%")
        return sql.SQL("({} AND ({}))").format(
            key[0], sql.SQL(" OR ").join(parts)), params

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """Alphabetically by folded text: the smallest ascending, the largest descending
        (whole values only: the rows of family name parts have an empty ``exact``)."""
        return sql.SQL("{} FILTER (WHERE {} <> '')").format(
            min_max(descending, col(alias, "norm")), col(alias, "exact"))


STRING = StringSql()
