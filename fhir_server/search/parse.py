"""Query string -> a typed search request: clauses, chains, _has, and result parameters.

Unknown or unsupported parameters are collected, not fatal: the service ignores them
(and leaves them out of the ``self`` link) unless the client asked for
``Prefer: handling=strict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fhir_server.errors import BadRequest
from fhir_server.search.base import split_escaped
from fhir_server.search.registry import Registry, SearchParam

#: Parameters that shape the result rather than select resources.
RESULT_PARAMS = frozenset({
    "_sort", "_count", "_include", "_revinclude", "_summary", "_elements", "_total",
    "_format", "_pretty", "_cursor", "_contained", "_containedType",
})
#: Parameters every resource type has (the only ones a multi-type search accepts).
COMMON_PARAMS = frozenset({"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"})
#: Modifiers handled for every type by the compiler itself.
GENERIC_MODIFIERS = frozenset({"missing"})
#: Modifiers each type may accept (the type modules enforce the details).
TYPE_MODIFIERS: dict[str, frozenset[str]] = {
    "token": frozenset({"not", "text", "in", "not-in", "of-type", "above", "below"}),
    "string": frozenset({"exact", "contains"}),
    "date": frozenset(),
    "number": frozenset(),
    "quantity": frozenset(),
    "reference": frozenset({"identifier", "above", "below"}),
    "uri": frozenset({"above", "below"}),
    "composite": frozenset(),
}


@dataclass(frozen=True)
class Link:
    """One hop of a chain: a reference parameter and the target type(s) it leads to."""

    param: SearchParam
    target_types: tuple[str, ...]


@dataclass(frozen=True)
class Clause:
    """``param[:modifier]=v1,v2`` (OR), possibly reached through a chain of references."""

    name: str
    param: SearchParam
    modifier: str | None
    values: tuple[str, ...]
    chain: tuple[Link, ...] = ()
    #: for a chain over several target types: the same final parameter on each type
    alternatives: tuple[SearchParam, ...] = ()


@dataclass(frozen=True)
class HasClause:
    """``_has:Type:reference:<inner>``: some ``Type`` referring to the resource matches."""

    name: str
    source_type: str
    reference: SearchParam
    inner: Clause | HasClause


@dataclass(frozen=True)
class Include:
    """``_include``/``_revinclude`` = ``Source:param[:Target]`` or ``*``, maybe iterating."""

    source_type: str
    param_code: str
    target_type: str | None
    iterate: bool
    reverse: bool


@dataclass(frozen=True)
class MultiType:
    """One parameter in a system search: a clause per type (any may match)."""

    name: str
    per_type: list[Clause | HasClause]


@dataclass
class SearchRequest:
    """A parsed search: what selects resources and how to present them."""

    resource_types: tuple[str, ...]
    clauses: list[Clause | HasClause | MultiType] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)
    count: int | None = None
    includes: list[Include] = field(default_factory=list)
    summary: str | None = None
    elements: list[str] | None = None
    total: str = "none"
    cursor: str | None = None
    #: (name, value) pairs that were applied, for the self link
    applied: list[tuple[str, str]] = field(default_factory=list)
    #: names that were ignored, with why
    ignored: list[tuple[str, str]] = field(default_factory=list)


def split_values(raw: str) -> tuple[str, ...]:
    """The OR values of one parameter (commas not escaped with a backslash)."""
    return tuple(v.replace("\\,", ",") for v in split_escaped(raw, ","))


class Parser:
    """Parses query pairs against a registry."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def param(self, resource_type: str, code: str) -> SearchParam | None:
        """A parameter of a type (``_id`` and ``_lastUpdated`` included)."""
        return self._registry.get(resource_type, code)

    def parse(self, resource_types: Sequence[str], pairs: Sequence[tuple[str, str]],
              strict: bool) -> SearchRequest:
        """Parse ``pairs`` for a search over ``resource_types`` (several: system search)."""
        request = SearchRequest(tuple(resource_types))
        for name, value in pairs:
            if value == "":
                continue  # search.html: empty parameters are not an error, just ignored
            try:
                self._one(request, name, value)
            except _Ignored as why:
                if strict:
                    raise BadRequest(f"search parameter {name!r}: {why}") from None
                request.ignored.append((name, str(why)))
        return request

    def _one(self, request: SearchRequest, name: str, value: str) -> None:
        base, _, modifier = name.partition(":")
        if base in ("_include", "_revinclude"):
            if modifier not in ("", "iterate", "recurse"):
                raise BadRequest(f"{name}: unknown modifier :{modifier}")
            request.includes.append(self._include(base, value, bool(modifier)))
            request.applied.append((name, value))
            return
        if name in RESULT_PARAMS:
            self._result(request, name, value)
            return
        if name == "_type":
            return  # system search: the service reads _type before parsing
        types = request.resource_types
        # System search: a parameter must exist on every type searched (e.g. _id).
        if len(types) != 1 and name.split(":")[0].split(".")[0] not in COMMON_PARAMS:
            raise _Ignored("only common parameters are supported across types")
        clauses = [self._clause(t, name, value) for t in types]
        request.clauses.append(clauses[0] if len(types) == 1 else MultiType(name, clauses))
        request.applied.append((name, value))

    def _clause(self, rtype: str, name: str, value: str) -> Clause | HasClause:
        if name.startswith("_has:"):
            return self._has(rtype, name, value)
        links: list[Link] = []
        parts = name.split(".")
        current: tuple[str, ...] = (rtype,)
        for hop in parts[:-1]:
            code, _, modifier = hop.partition(":")
            params = [self.param(t, code) for t in current]
            ref = next((p for p in params if p is not None), None)
            if ref is None or ref.type != "reference":
                raise _Ignored(f"{code!r} is not a reference parameter of {'/'.join(current)}")
            targets = (modifier,) if modifier else ref.targets
            if not targets:
                raise _Ignored(f"{code!r} has no target types to chain into")
            links.append(Link(ref, tuple(targets)))
            current = tuple(targets)
        code, _, modifier = parts[-1].partition(":")
        finals = [p for p in (self.param(t, code) for t in current) if p is not None]
        if not finals:
            raise _Ignored(f"unknown parameter {code!r} for {'/'.join(current)}")
        final = finals[0]
        if final.status != "active":
            raise _Ignored(f"the index of {code!r} is still being built")
        mod = modifier or None
        self._check_modifier(final, mod, value)
        return Clause(name, final, mod, split_values(value), tuple(links), tuple(finals))

    def _check_modifier(self, param: SearchParam, modifier: str | None, value: str) -> None:
        if modifier is None:
            return
        if modifier == "missing":
            if value not in ("true", "false"):
                raise BadRequest(f"{param.code}:missing takes true or false, not {value!r}")
            return
        allowed = TYPE_MODIFIERS.get(param.type, frozenset())
        if param.type == "reference" and modifier in param.targets:
            return
        if modifier not in allowed:
            raise BadRequest(f"modifier :{modifier} is not supported on {param.type} "
                             f"parameter {param.code!r}")

    def _has(self, rtype: str, name: str, value: str) -> HasClause:
        pieces = name.split(":", 3)
        if len(pieces) < 4:
            raise BadRequest(f"{name!r}: _has takes _has:Type:reference:parameter")
        _, source, ref_code, rest = pieces
        reference = self.param(source, ref_code)
        if reference is None or reference.type != "reference":
            raise _Ignored(f"{ref_code!r} is not a reference parameter of {source}")
        if reference.targets and rtype not in reference.targets:
            raise _Ignored(f"{source}.{ref_code} does not refer to {rtype}")
        return HasClause(name, source, reference, self._clause(source, rest, value))

    def _result(self, request: SearchRequest, name: str, value: str) -> None:
        if name == "_sort":
            for key in value.split(","):
                key = key.strip()
                if not key:
                    continue
                descending = key.startswith("-")
                code = key.lstrip("-")
                for rtype in request.resource_types:
                    if self.param(rtype, code) is None:
                        raise BadRequest(f"_sort: unknown parameter {code!r} for {rtype}")
                request.sort.append((code, descending))
        elif name == "_count":
            try:
                request.count = int(value)
            except ValueError:
                raise BadRequest(f"_count must be a whole number, not {value!r}") from None
            if request.count < 0:
                raise BadRequest("_count must not be negative")
            if request.count == 0:
                # search.html#count: _count=0 is treated as _summary=count.
                request.summary = "count"
        elif name == "_summary":
            if value not in ("true", "false", "text", "data", "count"):
                raise BadRequest("_summary must be true, false, text, data or count")
            request.summary = value
        elif name == "_elements":
            request.elements = [e.strip() for e in value.split(",") if e.strip()]
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise BadRequest("_total must be none, estimate or accurate")
            request.total = value
        elif name == "_cursor":
            request.cursor = value
            return
        elif name in ("_contained", "_containedType"):
            if value not in ("false", "container"):
                raise _Ignored("contained resources are not searched")
            return
        else:
            return
        request.applied.append((name, value))

    def _include(self, name: str, value: str, iterate: bool) -> Include:
        reverse = name == "_revinclude"
        if value == "*":
            return Include("*", "*", None, iterate, reverse)
        parts = value.split(":")
        if len(parts) not in (2, 3):
            raise BadRequest(f"{name}={value!r}: expected Type:parameter[:TargetType]")
        source, code = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if code != "*":
            param = self.param(source, code)
            if param is None or param.type != "reference":
                raise BadRequest(f"{name}: {code!r} is not a reference parameter of {source}")
        return Include(source, code, target, iterate, reverse)


class _Ignored(Exception):
    """A parameter the server does not support; ignored unless handling=strict."""
