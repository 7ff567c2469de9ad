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
- ``:below``/``:above`` -> ``h_sys_code = ANY(...)`` over the code and the codes below
  (above) it, in a code system whose hierarchy the server holds

A value set's or hierarchy's ``system|code`` keys come with ``|code`` keys too: an
element of type ``code`` (``Patient.gender``) is indexed without the system its binding
implies, and must match as well.

Matching is exact and case-sensitive (the hashes are of the literal values), except on
ContactPoint values (``email``, ``phone``, ``telecom``): search.html 3.1.1.4.10 leaves
their case to the server, and e-mail addresses are not case-sensitive, so they are
lower-cased before hashing, in the index and in the search value of a parameter that
:func:`contact_point_param` recognises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fhir_server.errors import BadRequest
from fhir_server.search.base import (
    IndexContext,
    Node,
    ParseContext,
    normalize,
    refuse_modifier,
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
        return [(None, fold_contact(_str(value.get("value"))), None)]
    if node.type == "boolean" and isinstance(value, bool):
        return [(None, "true" if value else "false", None)]
    if isinstance(value, str | int) and not isinstance(value, bool) and value != "" and (
            node.type in _PRIMITIVES):
        # A code's system is implied by its binding; the spec matches such values by code
        # only, so no system is stored.
        return [(None, str(value), None)]
    return []


def fold_contact(value: str | None) -> str | None:
    """A ContactPoint value in the case it is indexed and searched in (lower case)."""
    return value.casefold() if value is not None else None


def contact_point_param(expression: str | None) -> bool:
    """Whether a token parameter's expression reads ContactPoints (``...telecom``), whose
    search values are lower-cased like the index (all official ones: email, phone,
    telecom)."""
    return expression is not None and re.search(r"\btelecom\b", expression) is not None


def _coding(value: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    return _str(value.get("system")), _str(value.get("code")), _str(value.get("display"))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


# Pure, and the same codes recur in every resource of a load (LOINC, statuses): cached.
@lru_cache(maxsize=1 << 16)
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


@dataclass(frozen=True, slots=True)
class TokenKey:
    """A token search value answered by one hash column: ``code`` (``h_code``),
    ``system_code`` (``h_sys_code``), ``system`` (``h_sys``) or ``type_value``
    (``h_type_value``, for ``:of-type``)."""

    column: str
    key: int


@dataclass(frozen=True, slots=True)
class TokenText:
    """``:text``: the folded display or text starts with ``text``."""

    text: str


@dataclass(frozen=True, slots=True)
class TokenKeys:
    """``:in``/``:not-in``: any of the ``system|code`` keys of a value set's expansion."""

    keys: tuple[int, ...]


TokenValue = TokenKey | TokenText | TokenKeys


def parse_token(p: int, raw: str, name: str = "token", fold: bool = False) -> TokenKey:
    """Parse ``code``, ``system|code``, ``|code`` or ``system|`` into its hash key.

    ``raw`` is still escaped (``\\|`` is a literal bar). BadRequest when malformed.
    ``fold``: the code is a ContactPoint value, lower-cased as in the index.
    """
    parts = split_escaped(raw, "|")
    if len(parts) > 2:
        raise BadRequest(f"{name}: {raw!r} has more than one unescaped '|' "
                         "(escape a literal bar as \\|)")
    if len(parts) == 1:
        code = unescape(parts[0])
        if not code:
            raise BadRequest(f"{name}: empty token value")
        return TokenKey("code", h64(p, code.casefold() if fold else code))
    system, code = unescape(parts[0]), unescape(parts[1])
    if fold:
        code = code.casefold()
    if not system and not code:
        raise BadRequest(f"{name}: {raw!r} has neither a system nor a code")
    if not code:
        return TokenKey("system", h64(p, system))
    return TokenKey("system_code", h64(p, system, code))


class TokenType:
    """The ``token`` parameter type (``idx_token``)."""

    name = "token"
    columns: tuple[tuple[str, str], ...] = (
        ("h_code", "bigint"), ("h_sys_code", "bigint"), ("h_sys", "bigint"),
        ("h_type_value", "bigint"), ("system", "text"), ("code", "text"),
        ("display", "text"),
    )
    modifiers = frozenset({"not", "text", "in", "not-in", "of-type", "above", "below"})

    def rows(self, p: int, nodes: list[Node], ctx: IndexContext) -> list[tuple[Any, ...]]:
        """Rows for Coding, CodeableConcept (+ text), Identifier, ContactPoint, primitives."""
        return list(token_rows(p, nodes))

    def parse(self, p: int, modifier: str | None, raw: str, ctx: ParseContext) -> TokenValue:
        """``[system]|[code]`` (also under ``:not``), a text (``:text``), a value set URL
        (``:in``/``:not-in``), ``system|code`` in a known hierarchy (``:above``/``:below``)
        or ``type-system|type-code|value`` (``:of-type``)."""
        refuse_modifier(self.name, modifier, self.modifiers)
        if modifier in (None, "not"):
            return parse_token(p, raw, fold=ctx.fold_case)
        if modifier == "text":
            return TokenText(normalize(unescape(raw)))
        if modifier in ("in", "not-in"):
            url = unescape(raw)
            expansion = ctx.expand_valueset(url) if ctx.expand_valueset is not None else None
            if expansion is None:
                raise BadRequest(f":{modifier}: value set not known or not expandable here: "
                                 f"{url!r} (see $expand for why)")
            return _keys(p, expansion)
        if modifier in ("above", "below"):
            return _subsumed(p, modifier, raw, ctx)
        return TokenKey("type_value", _of_type_key(p, raw))


def _keys(p: int, pairs: Iterable[tuple[str | None, str]]) -> TokenKeys:
    """The ``system|code`` keys of ``pairs``, and their ``|code`` keys (see module doc)."""
    pairs = list(pairs)
    return TokenKeys(tuple(dict.fromkeys([*(h64(p, s or "", c) for s, c in pairs),
                                          *(h64(p, "", c) for s, c in pairs if s)])))


def _subsumed(p: int, modifier: str, raw: str, ctx: ParseContext) -> TokenKeys:
    """``:below``/``:above`` on ``system|code``: that code and those below (above) it."""
    parts = split_escaped(raw, "|")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise BadRequest(f"token :{modifier} needs system|code (the code system whose "
                         f"hierarchy is meant), not {raw!r}")
    system, code = unescape(parts[0]), unescape(parts[1])
    codes = ctx.subsumption(system, code, modifier) if ctx.subsumption is not None else None
    if codes is None:
        raise BadRequest(f"token :{modifier}: this server does not hold the hierarchy of "
                         f"the code system {system} (it holds those of the FHIR "
                         "specification's CodeSystems, and of those in its profile folders)")
    return _keys(p, ((system, c) for c in codes))


def _of_type_key(p: int, raw: str) -> int:
    parts = split_escaped(raw, "|")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise BadRequest(f":of-type needs type-system|type-code|value, got {raw!r}")
    system, code, value = (unescape(x) for x in parts)
    return h64(p, system, code, value)


#: The token parameter type.
TOKEN = TokenType()
