"""Query string -> a typed search request: clauses, chains, _has, and result parameters.

Every value is parsed here by its parameter's type (which alone decides the modifiers it
takes), so a malformed value or modifier is a 400 naming the parameter before anything
runs. Unknown or unsupported parameters are collected, not fatal: the service ignores
them (and leaves them out of the ``self`` link) unless the client asked for
``Prefer: handling=strict``. ``_query`` is always a 400: no named query is supported
(search.html 3.1.1.7). ``_text`` and ``_content`` are full-text searches
(``search.text``), read in the parser's text search configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from fhir_server.errors import BadRequest
from fhir_server.search.base import ParseContext, split_escaped
from fhir_server.search.date import parse_date_value
from fhir_server.search.hashing import contained_key
from fhir_server.search.kinds import PARAM_TYPES
from fhir_server.search.limits import SearchLimits, check_text, links, too_costly
from fhir_server.search.reference import identifier_param_key
from fhir_server.search.registry import COLUMN_PARAMS, Registry, SearchParam
from fhir_server.search.request import (
    AnyClause,
    Clause,
    Criterion,
    HasClause,
    Include,
    Link,
    MultiType,
    SearchRequest,
    Sort,
)
from fhir_server.search.text import DEFAULT_CONFIG, TEXT_PARAMS, parse_text_values
from fhir_server.search.token import contact_point_param

#: Parameters that shape the result rather than select resources.
RESULT_PARAMS = frozenset({
    "_sort", "_count", "_include", "_revinclude", "_summary", "_elements", "_total",
    "_format", "_pretty", "_cursor", "_contained", "_containedType",
})
#: Parameters every resource type has (the only ones a multi-type search accepts).
COMMON_PARAMS = frozenset({"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"})
#: Modifiers of the parameters answered from the resource table's own columns.
_COLUMN_MODIFIERS = {"_id": frozenset({"not"}), "_lastUpdated": frozenset()}


def split_values(raw: str) -> tuple[str, ...]:
    """The OR values of one parameter (commas not escaped with a backslash)."""
    if "\\" not in raw:  # the common case, without a loop over every character
        return tuple(raw.split(","))
    return tuple(v.replace("\\,", ",") for v in split_escaped(raw, ","))


def parse_count(raw: str) -> int:
    """A ``_count``: a whole number, not negative; BadRequest otherwise."""
    if raw.startswith("-") and raw[1:].isascii() and raw[1:].isdigit():
        raise BadRequest("_count must not be negative")
    # int() would also take " 5", "+5" and "5_000"
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest(f"_count must be a whole number, not {raw[:40]!r}")
    return int(raw)


class Parser:
    """Parses query pairs against a registry."""

    def __init__(self, registry: Registry, text_config: str = DEFAULT_CONFIG,
                 limits: SearchLimits | None = None) -> None:
        self._registry = registry
        #: the text search configuration ``_text``/``_content`` values are read in
        self._text_config = text_config
        self._limits = limits or SearchLimits()

    def param(self, resource_type: str, code: str) -> SearchParam | None:
        """A parameter of a type (``_id`` and ``_lastUpdated`` included)."""
        return self._registry.get(resource_type, code)

    def parse(self, resource_types: Sequence[str], pairs: Sequence[tuple[str, str]],
              strict: bool, ctx: ParseContext | None = None) -> SearchRequest:
        """Parse ``pairs`` for a search over ``resource_types`` (several: system search)."""
        request = SearchRequest(tuple(resource_types))
        context = ctx or ParseContext()
        budget = _Budget(self._limits)
        for name, value in pairs:
            check_text(name, value)
            if value == "":
                continue  # search.html: empty parameters are not an error, just ignored
            try:
                self._one(request, name, value, context, budget)
            except _Ignored as why:
                if strict:
                    raise BadRequest(f"search parameter {name!r}: {why}") from None
                request.ignored.append((name, str(why)))
        return request

    def criteria(self, resource_type: str, pairs: Sequence[tuple[str, str]],
                 ctx: ParseContext | None = None) -> list[AnyClause]:
        """The clauses of search criteria that must all be understood (access rules,
        conditional interactions): an unknown parameter is a BadRequest."""
        return self.parse([resource_type], pairs, True, ctx).clauses

    def _one(self, request: SearchRequest, name: str, value: str, ctx: ParseContext,
             budget: _Budget) -> None:
        base, _, modifier = name.partition(":")
        if base in ("_include", "_revinclude"):
            if modifier not in ("", "iterate", "recurse"):
                raise BadRequest(f"{name}: unknown modifier :{modifier}")
            budget.parameters(1)  # each is one more query per page
            request.includes.append(self._include(base, value, bool(modifier)))
            request.applied.append((name, value))
            return
        if name in RESULT_PARAMS:
            self._result(request, name, value, budget)
            return
        if name == "_type":
            # system search: the service reads _type before parsing; the links keep it
            # (a next page without it would search every type)
            request.applied.append((name, value))
            return
        if base == "_query":
            raise BadRequest(f"_query={value[:40]!r}: this server supports no named queries")
        # Each link of a chain or _has is a join of its own: all count, before any work.
        budget.parameters(1 + links(name, self._limits.max_chain_depth))
        types = request.resource_types
        if len(types) != 1 and base in TEXT_PARAMS:
            # idx_text is one row per resource whatever its type: one clause for all
            # (a type without a narrative has no idx_text narrative to match).
            having = [t for t in types if self.param(t, base) is not None]
            if not having:
                raise _Ignored(f"unknown parameter {base!r} for {'/'.join(types)}")
            types = (having[0],)
        # System search: a parameter must exist on every type searched (e.g. _id).
        if len(types) != 1 and name.split(":")[0].split(".")[0] not in COMMON_PARAMS:
            raise _Ignored("only common parameters are supported across types")
        values = split_values(value)
        budget.values(len(values))
        clauses = tuple(self._clause(t, name, values, ctx) for t in types)
        request.clauses.append(clauses[0] if len(types) == 1 else MultiType(name, clauses))
        request.applied.append((name, value))

    def _clause(self, rtype: str, name: str, values: tuple[str, ...],
                ctx: ParseContext) -> Clause | HasClause:
        if name.startswith("_has:"):
            return self._has(rtype, name, values, ctx)
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
        if finals[0].status != "active":
            raise _Ignored(f"the index of {code!r} is still being built")
        if not (finals[0].indexed or finals[0].code in COLUMN_PARAMS
                or finals[0].code in TEXT_PARAMS):
            raise _Ignored(f"{code!r} is not supported")
        criteria = tuple(self._criterion(p, modifier or None, values, ctx) for p in finals)
        contained: tuple[Criterion, ...] = ()
        if links and modifier != "identifier":
            # Chains also look inside contained resources (search.html 3.1.1.5.5).
            contained = tuple(
                _criterion(p, modifier or None, values, ctx, contained_key(p.p))
                for p in finals if p.indexed)
        return Clause(name, criteria, tuple(links), contained)

    def _criterion(self, param: SearchParam, modifier: str | None, raw: Sequence[str],
                   ctx: ParseContext) -> Criterion:
        """The values of one parameter parsed by its type; BadRequest naming it."""
        try:
            if param.code in TEXT_PARAMS and modifier != "missing":
                return Criterion(param, None, parse_text_values(
                    param.code, modifier, raw, self._text_config))
            return _criterion(param, modifier, raw, ctx)
        except BadRequest as exc:
            raise BadRequest(f"search parameter {param.code!r}: {exc.diagnostics}",
                             code=exc.code) from None

    def _has(self, rtype: str, name: str, values: tuple[str, ...],
             ctx: ParseContext) -> HasClause:
        """``_has:Type:reference:<inner>``; ``links`` has bounded how deep it nests."""
        pieces = name.split(":", 3)
        if len(pieces) < 4:
            raise BadRequest(f"{name!r}: _has takes _has:Type:reference:parameter")
        _, source, ref_code, rest = pieces
        reference = self.param(source, ref_code)
        if reference is None or reference.type != "reference":
            raise _Ignored(f"{ref_code!r} is not a reference parameter of {source}")
        if reference.targets and rtype not in reference.targets:
            raise _Ignored(f"{source}.{ref_code} does not refer to {rtype}")
        return HasClause(name, source, reference, self._clause(source, rest, values, ctx))

    def _result(self, request: SearchRequest, name: str, value: str,
                budget: _Budget) -> None:
        if name == "_sort":
            for key in value.split(","):
                key = key.strip()
                if key:
                    budget.parameters(1)  # each key is a join of its own
                    request.sort.append(self._sort(request.resource_types, key))
        elif name == "_count":
            request.count = parse_count(value)
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

    def _sort(self, types: Sequence[str], key: str) -> Sort:
        descending = key.startswith("-")
        code = key.lstrip("-")
        params: list[SearchParam] = []
        for rtype in types:
            param = self.param(rtype, code)
            if param is None:
                raise BadRequest(f"_sort: unknown parameter {code!r} for {rtype}")
            params.append(param)
        if code in COLUMN_PARAMS:
            return Sort(code, descending)
        if params[0].type == "composite" or not params[0].indexed:
            raise BadRequest(f"_sort: cannot sort by {params[0].type} parameter {code!r}")
        return Sort(code, descending, tuple(params))

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


def _criterion(param: SearchParam, modifier: str | None, raw: Sequence[str],
               ctx: ParseContext, p: int | None = None) -> Criterion:
    """The values parsed for parameter key ``p`` (default: the parameter's own)."""
    if modifier == "missing":
        if any(v not in ("true", "false") for v in raw):
            raise BadRequest(f":missing takes true or false, not {','.join(raw)!r}")
        return Criterion(param, modifier, (raw[-1] == "true",))
    if param.code in COLUMN_PARAMS:
        allowed = _COLUMN_MODIFIERS[param.code]
        if modifier is not None and modifier not in allowed:
            raise BadRequest(f"modifier :{modifier} is not supported on {param.code}")
        if param.code == "_id":
            return Criterion(param, modifier, tuple(raw))
        return Criterion(param, modifier, tuple(parse_date_value(v, ctx.now) for v in raw))
    kind = PARAM_TYPES[param.type]
    p = param.p if p is None else p
    if param.type == "reference":
        if modifier == "identifier":
            kind, p = PARAM_TYPES["token"], identifier_param_key(param.resource_type,
                                                                 param.code)
            return Criterion(param, modifier, tuple(kind.parse(p, None, v, ctx) for v in raw))
        ctx = replace(ctx, targets=param.targets)
        if modifier is not None and modifier != "below":
            # :[type] restricts the values' targets; no modifier remains.
            values = tuple(kind.parse(p, modifier, v, ctx) for v in raw)
            return Criterion(param, None, values)
    elif param.type == "composite":
        ctx = replace(ctx, targets=tuple(c.type for c in param.components))
    elif param.type == "token" and contact_point_param(param.expression):
        ctx = replace(ctx, fold_case=True)
    return Criterion(param, modifier, tuple(kind.parse(p, modifier, v, ctx) for v in raw))


class _Budget:
    """What the parameters parsed so far have used of a search's limits."""

    def __init__(self, limits: SearchLimits) -> None:
        self._limits = limits
        self._parameters = 0
        self._values = 0

    def parameters(self, n: int) -> None:
        """Count ``n`` more parameters; a 400 ``too-costly`` past the limit."""
        self._parameters += n
        limit = self._limits.max_parameters
        if self._parameters > limit:
            raise too_costly(f"more than {limit} parameters (repetitions, chain links, "
                             "_has, _sort keys and _include count)", limit,
                             "SEARCH_MAX_PARAMETERS")

    def values(self, n: int) -> None:
        """Count ``n`` more values (ORs); a 400 ``too-costly`` past the limit."""
        self._values += n
        limit = self._limits.max_values
        if self._values > limit:
            raise too_costly(f"more than {limit} values (ORs over all its parameters)",
                             limit, "SEARCH_MAX_VALUES")


class _Ignored(Exception):
    """A parameter the server does not support; ignored unless handling=strict."""
