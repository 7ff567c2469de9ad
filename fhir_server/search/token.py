"""Token search parameters: codes, codings, identifiers, contact points, booleans.

Rows of ``idx_token`` carry 64-bit hashes of the keys a token search can use (see
``migrations/V2__search_index.sql``), so every form of token search is an equality on one
indexed column:

- ``[code]``          -> ``h_code = h64(p, code)``
- ``[system]|[code]`` -> ``h_sys_code = h64(p, system, code)``
- ``|[code]``         -> ``h_sys_code = h64(p, '', code)`` (only values without a system)
- ``[system]|``       -> ``h_sys = h64(p, system)``
- ``:of-type``        -> ``h_type_value = h64(p, type system, type code, value)``
- ``:text``           -> prefix of the normalized ``display`` (``p`` checked explicitly)
- ``:in``/``:not-in`` -> ``h_sys_code = ANY(...)`` over the expanded value set

Matching is exact and case-sensitive (the hashes are of the literal values).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import (
    Fragment,
    Node,
    SearchContext,
    normalize,
    split_escaped,
    unescape,
)
from fhir_server.search.hashing import h64

#: One idx_token row after ``p``: h_code, h_sys_code, h_sys, h_type_value, system, code, display
TokenRow = tuple[int, int | None, int | None, int | None, int | None, str | None, str | None,
                 str | None]

#: FHIR primitive types indexed as a bare code (no system).
_PRIMITIVES = frozenset({"code", "string", "id", "uri", "url", "canonical", "oid", "uuid",
                         "markdown", "integer", "positiveInt", "unsignedInt"})


def codings(node: Node) -> list[tuple[str | None, str | None, str | None]]:
    """The (system, code, display) pairs a token node stands for, without :text extras.

    Used by the composite module too, so that both index the same token keys.
    """
    value = node.value
    if node.type == "Coding" and isinstance(value, dict):
        return [_coding(value)]
    if node.type == "CodeableConcept" and isinstance(value, dict):
        return [_coding(c) for c in value.get("coding") or [] if isinstance(c, dict)]
    if node.type == "Identifier" and isinstance(value, dict):
        return [(_str(value.get("system")), _str(value.get("value")), None)]
    if node.type == "ContactPoint" and isinstance(value, dict):
        # The spec's token table gives ContactPoint no URI: ContactPoint.system is a
        # kind of channel (phone, email), not a namespace of the value.
        return [(None, _str(value.get("value")), None)]
    if node.type == "boolean" and isinstance(value, bool):
        return [(None, "true" if value else "false", None)]
    if isinstance(value, str | int) and not isinstance(value, bool) and value != "" and (
            node.type in _PRIMITIVES):
        # A code's system is implied by its binding; the spec matches such values by code
        # only, so no system is stored.
        return [(None, str(value), None)]
    return []


def _coding(value: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    return _str(value.get("system")), _str(value.get("code")), _str(value.get("display"))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _row(p: int, system: str | None, code: str | None, display: str | None,
         type_value: int | None = None) -> TokenRow:
    return (
        p,
        h64(p, code) if code is not None else None,
        h64(p, system or "", code or "") if system is not None or code is not None else None,
        h64(p, system) if system is not None else None,
        type_value,
        system,
        code,
        normalize(display) if display else None,
    )


def _identifier_rows(p: int, value: dict[str, Any]) -> list[TokenRow]:
    system, code = _str(value.get("system")), _str(value.get("value"))
    raw_type = value.get("type")
    id_type: dict[str, Any] = raw_type if isinstance(raw_type, dict) else {}
    text = _str(id_type.get("text"))
    type_hashes = [
        h64(p, tsys or "", tcode, code)
        for tsys, tcode, _ in (_coding(c) for c in id_type.get("coding") or []
                               if isinstance(c, dict))
        if tcode is not None and code is not None
    ]
    if system is None and code is None and text is None:
        return []
    rows = [_row(p, system, code, text, type_hashes[0] if type_hashes else None)]
    # Further type codings only need their :of-type key.
    rows.extend((p, None, None, None, h, None, None, None) for h in type_hashes[1:])
    return rows


def token_rows(p: int, nodes: Iterable[Node]) -> list[TokenRow]:
    """The idx_token rows for the values of one parameter of one resource."""
    out: list[TokenRow] = []
    for node in nodes:
        if node.type == "Identifier" and isinstance(node.value, dict):
            out.extend(_identifier_rows(p, node.value))
            continue
        for system, code, display in codings(node):
            if system is not None or code is not None or display is not None:
                out.append(_row(p, system, code, display))
        if node.type == "CodeableConcept" and isinstance(node.value, dict):
            text = _str(node.value.get("text"))
            if text is not None:  # a row of its own, so text-only concepts are searchable
                out.append(_row(p, None, None, text))
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class ParsedToken:
    """One token search value: which hash column it compares and the hash."""

    column: str
    key: int


def parse_token(p: int, raw: str, name: str = "token") -> ParsedToken:
    """Parse ``code``, ``system|code``, ``|code`` or ``system|`` into its hash key.

    ``raw`` is still escaped (``\\|`` is a literal bar). BadRequest when malformed.
    """
    parts = split_escaped(raw, "|")
    if len(parts) > 2:
        raise BadRequest(f"{name}: {raw!r} has more than one unescaped '|' "
                         "(escape a literal bar as \\|)")
    if len(parts) == 1:
        code = unescape(parts[0])
        if not code:
            raise BadRequest(f"{name}: empty token value")
        return ParsedToken("h_code", h64(p, code))
    system, code = unescape(parts[0]), unescape(parts[1])
    if not system and not code:
        raise BadRequest(f"{name}: {raw!r} has neither a system nor a code")
    if not code:
        return ParsedToken("h_sys", h64(p, system))
    return ParsedToken("h_sys_code", h64(p, system, code))


def col(alias: sql.Identifier, column: str) -> sql.Composable:
    """``alias.column``."""
    return sql.SQL("{}.{}").format(alias, sql.Identifier(column))


def any_of(alias: sql.Identifier, column: str, keys: Sequence[int]) -> Fragment:
    """``alias.column = %s`` for one hash, ``= ANY(%s::bigint[])`` for several."""
    if len(keys) == 1:
        return sql.SQL("{} = %s").format(col(alias, column)), [keys[0]]
    return sql.SQL("{} = ANY(%s::bigint[])").format(col(alias, column)), [list(keys)]


def join_or(parts: Sequence[Fragment]) -> Fragment:
    """``(a OR b ...)``; ``false`` for no parts."""
    if not parts:
        return sql.SQL("false"), []
    if len(parts) == 1:
        return parts[0]
    text = sql.SQL("({})").format(sql.SQL(" OR ").join(f for f, _ in parts))
    return text, [v for _, params in parts for v in params]


def like_prefix(text: str) -> str:
    """A LIKE pattern matching strings that start with ``text`` (wildcards escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class TokenIndex:
    """The ``token`` parameter type (``idx_token``)."""

    name = "token"
    table = "idx_token"
    columns: tuple[tuple[str, str], ...] = (
        ("h_code", "bigint"), ("h_sys_code", "bigint"), ("h_sys", "bigint"),
        ("h_type_value", "bigint"), ("system", "text"), ("code", "text"),
        ("display", "text"),
    )
    modifiers = frozenset({"not", "text", "in", "not-in", "of-type"})

    def rows(self, p: int, nodes: Sequence[Node], ctx: SearchContext) -> list[tuple[Any, ...]]:
        """Rows for Coding, CodeableConcept (+ text), Identifier, ContactPoint, primitives."""
        return list(token_rows(p, nodes))

    def predicate(self, p: int, modifier: str | None, values: Sequence[str],
                  alias: sql.Identifier, ctx: SearchContext) -> Fragment:
        """A condition on one idx_token row matching any of ``values``.

        ``:not`` and ``:not-in`` return the *positive* condition (a row that has one of
        the values, or a code in the value set): the compiler wraps it as
        ``NOT EXISTS (...)``, so resources without any value match too, as the spec says.
        """
        if modifier in (None, "not"):
            return self._codes(p, values, alias)
        if modifier == "text":
            patterns = [like_prefix(normalize(unescape(v))) for v in values]
            if len(patterns) == 1:
                return (sql.SQL("{} = %s AND {} LIKE %s").format(
                    col(alias, "p"), col(alias, "display")), [p, patterns[0]])
            return (sql.SQL("{} = %s AND {} LIKE ANY(%s::text[])").format(
                col(alias, "p"), col(alias, "display")), [p, patterns])
        if modifier in ("in", "not-in"):
            keys = self._valueset_keys(values, modifier, ctx, p)
            if not keys:  # an empty expansion contains nothing
                return sql.SQL("{} = %s AND false").format(col(alias, "p")), [p]
            return any_of(alias, "h_sys_code", keys)
        if modifier == "of-type":
            return any_of(alias, "h_type_value", [_of_type_key(p, v) for v in values])
        if modifier in ("above", "below"):
            raise BadRequest(f"token modifier :{modifier} (subsumption) is not supported")
        raise BadRequest(f"unknown token modifier :{modifier}")

    def _codes(self, p: int, values: Sequence[str], alias: sql.Identifier) -> Fragment:
        by_column: dict[str, list[int]] = {}
        for raw in values:
            parsed = parse_token(p, raw)
            by_column.setdefault(parsed.column, []).append(parsed.key)
        return join_or([any_of(alias, c, list(dict.fromkeys(keys)))
                        for c, keys in by_column.items()])

    def _valueset_keys(self, values: Sequence[str], modifier: str, ctx: SearchContext,
                       p: int) -> list[int]:
        keys: list[int] = []
        for raw in values:
            url = unescape(raw)
            expansion = ctx.expand_valueset(url) if ctx.expand_valueset is not None else None
            if expansion is None:
                raise BadRequest(f":{modifier}: value set not known: {url!r}")
            keys.extend(h64(p, system or "", code) for system, code in expansion)
        return list(dict.fromkeys(keys))

    def sort_key(self, alias: sql.Identifier, descending: bool) -> sql.Composable:
        """The smallest code ascending, the largest descending."""
        return sql.SQL("{}({})").format(sql.SQL("max" if descending else "min"),
                                        col(alias, "code"))


def _of_type_key(p: int, raw: str) -> int:
    parts = split_escaped(raw, "|")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise BadRequest(f":of-type needs type-system|type-code|value, got {raw!r}")
    system, code, value = (unescape(x) for x in parts)
    return h64(p, system, code, value)


#: The token index type.
TOKEN = TokenIndex()
