"""Search parameters as OpenAPI query parameters: those of the registry that the parser
really answers (asked, not assumed), described whole by ``describe``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fhir_server.api.describe import describe
from fhir_server.api.openapi.components import SPEC
from fhir_server.search.kinds import PARAM_TYPES
from fhir_server.search.registry import SearchParam
from fhir_server.search.text import TEXT_PARAMS

#: A value of each parameter type for asking the parser whether it takes a parameter.
_PROBES = {"token": "x", "string": "x", "date": "2020-01-01", "number": "1",
           "quantity": "1", "reference": "x", "uri": "http://example.org/x",
           "composite": "x$1", "special": "1|1"}
#: What a value looks like, by parameter type.
_VALUES = {
    "token": "`[system]|[code]`, `[code]` or `[system]|`",
    "string": "text; matches the start of words, case- and accent-insensitive",
    "date": "`[prefix]YYYY[-MM[-DD[Thh:mm:ss]]]`, e.g. `ge2020-01-01`",
    "number": "`[prefix]number`, e.g. `gt5`",
    "quantity": "`[prefix]value|[system]|[code]`, e.g. `le5.4|http://unitsofmeasure.org|mg`",
    "reference": "`[Type]/[id]`, `[id]` or an absolute URL",
    "uri": "an absolute URI",
    "composite": "`[first]$[second]`, each as its component's type",
}
#: Modifiers of the parameters not answered by their type's module (``search.parse``:
#: ``_id``/``_lastUpdated`` from the resource's own columns, full text from idx_text).
_OWN_MODIFIERS = {"_id": ("missing", "not"), "_lastUpdated": ("missing",),
                  **{code: ("missing",) for code in TEXT_PARAMS}}
_FULL_TEXT = ("a full-text search expression: words (all must occur, stemmed), "
              '`"a phrase"`, `or`, `-word`')
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


class RegistryLike(Protocol):
    """What is read of ``search.registry.Registry``."""

    def params(self, resource_type: str) -> Mapping[str, SearchParam]:
        """The parameters of a type by code."""
        ...


class ParserLike(Protocol):
    """What is asked of ``search.parse.Parser``."""

    def parse(self, resource_types: Sequence[str], pairs: Sequence[tuple[str, str]],
              strict: bool) -> Any:
        """A search request whose ``ignored`` lists what was not understood."""
        ...


@dataclass(frozen=True)
class SearchFacts:
    """The registry and parser a document lists search parameters from."""

    registry: RegistryLike
    parser: ParserLike
    #: a type searched as the compartment owner's ``*`` or the system (common parameters)
    resource_types: tuple[str, ...] = field(default=())

    def understood(self, types: Sequence[str], param: SearchParam) -> bool:
        """Whether the parser answers ``param`` on a search of ``types``: a plain value
        of its type parses, neither ignored nor refused (``_query`` is a 400)."""
        if param.status != "active":
            return False
        value = "$".join(_PROBES.get(c.type, "x") for c in param.components) \
            if param.components else _PROBES.get(param.type, "x")
        try:
            request = self.parser.parse(list(types), [(param.code, value)], False)
        except Exception:  # refused, or a parameter type the parser has no module for
            return False
        return not request.ignored

    def for_type(self, rtype: str) -> list[SearchParam]:
        """The parameters a search of ``rtype`` answers, by code."""
        params = self.registry.params(rtype)
        return [p for _, p in sorted(params.items()) if self.understood([rtype], p)]

    def common(self) -> list[SearchParam]:
        """The parameters a search across every type answers (system search)."""
        if not self.resource_types:
            return []
        first = self.resource_types[0]
        return [p for p in self.for_type(first)
                if self.understood(self.resource_types, p)]


def description(param: SearchParam) -> str:
    """``param``'s whole description, with what its values look like and its modifiers
    (links absolute, into the R4 specification)."""
    kind = PARAM_TYPES.get(param.type)
    own = _OWN_MODIFIERS.get(param.code)
    modifiers = sorted(own or {"missing", *(kind.modifiers if kind else ())})
    if param.type == "reference":
        modifiers.append("[Type]")
    lines = [describe(param) or param.code, ""]
    what = f"`{param.type}` parameter ([search rules]({SPEC}search.html#{param.type}))"
    if param.code in TEXT_PARAMS:
        what += f"; a value is {_FULL_TEXT}"
    elif param.type in _VALUES:
        what += f"; a value is {_VALUES[param.type]}"
    if param.type in ("date", "number", "quantity"):
        what += f"; prefixes: {', '.join(f'`{p}`' for p in _PREFIXES)}"
    lines.append(what + ".")
    lines.append("Modifiers: " + ", ".join(f"`:{m}`" for m in modifiers) +
                 ". Commas OR values; repeating the parameter ANDs them.")
    if param.type == "reference":
        targets = ", ".join(param.targets) or "any type"
        lines.append(f"Refers to: {targets}; chain with `{param.code}.[parameter]` "
                     f"(`{param.code}:[Type].[parameter]`).")
    return "\n".join(lines)


def query_parameter(param: SearchParam) -> dict[str, Any]:
    """The OpenAPI parameter of ``param`` (repeating it is AND, hence an exploded array)."""
    out: dict[str, Any] = {
        "name": param.code, "in": "query", "required": False,
        "description": description(param), "style": "form", "explode": True,
        "schema": {"type": "array", "items": {"type": "string"}},
        "x-fhir-search-type": param.type}
    if param.url:
        out["x-fhir-definition"] = param.url
    return out


def component_name(param: SearchParam) -> str:
    """The key of ``param`` under ``components.parameters``."""
    return f"search.{param.code}"
