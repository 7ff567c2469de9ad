"""``ValueSet/$expand``, ``ValueSet/$validate-code`` (type and instance level),
``CodeSystem/$lookup`` and ``CodeSystem/$subsumes``: GET with the parameters in the
query, POST with a Parameters body (and the query). The answers are the terminology
service's (``fhir_server.terminology``); a missing or malformed parameter is a 400."""

from __future__ import annotations

from typing import Any

from fhir_server.api.common import resource_body
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.errors import BadRequest
from fhir_server.service import terminology as terms
from fhir_server.service.context import ServiceContext
from fhir_server.terminology.operations import Coded, ExpandQuery

_URI = ("valueUri", "valueUrl", "valueCanonical", "valueString")
_STRING = ("valueString",)
_CODE = ("valueCode", "valueString")
#: each operation's parameters and the value[x] (or ``resource``) each is given as
PARAMETERS: dict[str, dict[str, tuple[str, ...]]] = {
    "expand": {"url": _URI, "valueSetVersion": _STRING, "valueSet": ("resource",),
               "filter": _STRING, "count": ("valueInteger",), "offset": ("valueInteger",),
               "includeDesignations": ("valueBoolean",)},
    "validate-code": {"url": _URI, "valueSetVersion": _STRING, "valueSet": ("resource",),
                      "code": _CODE, "system": _URI, "systemVersion": _STRING,
                      "display": _STRING, "coding": ("valueCoding",),
                      "codeableConcept": ("valueCodeableConcept",)},
    "lookup": {"code": _CODE, "system": _URI, "version": _STRING,
               "coding": ("valueCoding",)},
    "subsumes": {"codeA": _CODE, "codeB": _CODE, "system": _URI, "version": _STRING,
                 "codingA": ("valueCoding",), "codingB": ("valueCoding",)},
}


def _part_value(operation: str, part: Any) -> tuple[str, Any]:
    name = part.get("name") if isinstance(part, dict) else None
    known = PARAMETERS[operation]
    if name not in known:
        raise BadRequest(f"${operation} has no parameter {name!r} "
                         f"({', '.join(known)})")
    for key in known[name]:
        if key in part:
            return name, part[key]
    raise BadRequest(f"the parameter {name!r} needs a value ({' or '.join(known[name])})")


def _query_value(operation: str, name: str, raw: str) -> Any:
    kinds = PARAMETERS[operation][name]
    if kinds == ("resource",):
        raise BadRequest(f"{name} is a resource: POST it in a Parameters body")
    if kinds == ("valueInteger",):
        if not (raw.isascii() and raw.isdigit() and len(raw) < 10):
            raise BadRequest(f"{name} takes a non-negative integer, not {raw!r}")
        return int(raw)
    if kinds == ("valueBoolean",):
        if raw not in ("true", "false"):
            raise BadRequest(f"{name} takes true or false, not {raw!r}")
        return raw == "true"
    if kinds in (("valueCoding",), ("valueCodeableConcept",)):
        system, sep, code = raw.rpartition("|")
        coding = {"system": system, "code": code} if sep and system else {"code": code}
        return coding if kinds == ("valueCoding",) else {"coding": [coding]}
    return raw


def _given(operation: str, request: FhirRequest, ctx: ServiceContext) -> dict[str, Any]:
    """The operation's parameters from the query and (POST) a Parameters body."""
    out: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        if name in out and out[name] != value:
            raise BadRequest(f"${operation} takes {name} once")
        out[name] = value

    if request.method == "POST" and (request.resource is not None or request.body):
        body = resource_body(request, ctx)[0]
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise BadRequest(f"POST ${operation} takes a Parameters resource")
        parts = body.get("parameter", [])
        if not isinstance(parts, list):
            raise BadRequest("Parameters.parameter must be a list")
        for part in parts:
            put(*_part_value(operation, part))
    for name, raw in request.pairs:
        if name.startswith("_") or name == "_cursor":
            continue  # _format, _pretty: the wire's, not the operation's
        if name not in PARAMETERS[operation]:
            raise BadRequest(f"${operation} has no parameter {name!r} "
                             f"({', '.join(PARAMETERS[operation])})")
        put(name, _query_value(operation, name, raw))
    for name, value in out.items():
        if isinstance(value, str) and not value:
            raise BadRequest(f"the parameter {name!r} is empty")
    return out


def _coded(value: Any, name: str) -> Coded:
    if not isinstance(value, dict) or not isinstance(value.get("code"), str) \
            or not value["code"]:
        raise BadRequest(f"{name} needs a code")
    def text(key: str) -> str | None:
        item = value.get(key)
        return item if isinstance(item, str) and item else None
    return Coded(text("system"), value["code"], text("display"), text("version"))


async def _value_set(operation: str, request: FhirRequest, ctx: ServiceContext,
                     given: dict[str, Any]) -> dict[str, Any]:
    """The value set the request names: the path's id, ``valueSet`` or ``url``."""
    named = [n for n in ("url", "valueSet") if n in given]
    if "id" in request.params:
        if named:
            raise BadRequest(f"ValueSet/[id]/${operation} takes no {named[0]}: the path "
                             "names the value set")
        return await terms.value_set_by_id(ctx, request.params["id"])
    if len(named) != 1:
        raise BadRequest(f"ValueSet/${operation} needs one of url or valueSet (POST)")
    if named[0] == "valueSet":
        return terms.given_value_set(given["valueSet"])
    return terms.value_set_by_url(ctx, given["url"], given.get("valueSetVersion"))


async def expand_type(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """ValueSet/$expand: the value set of ``url`` or ``valueSet``, expanded."""
    return await _expand(request, ctx)


async def expand_instance(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """ValueSet/[id]/$expand: the value set of that id, expanded."""
    return await _expand(request, ctx)


async def validate_code_type(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """ValueSet/$validate-code against the value set of ``url`` or ``valueSet``."""
    return await _validate_code(request, ctx)


async def validate_code_instance(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """ValueSet/[id]/$validate-code against the value set of that id."""
    return await _validate_code(request, ctx)


async def _expand(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """The ValueSet with its expansion."""
    given = _given("expand", request, ctx)
    vs = await _value_set("expand", request, ctx, given)
    for name in ("count", "offset"):
        if name in given and (not isinstance(given[name], int) or given[name] < 0
                              or isinstance(given[name], bool)):
            raise BadRequest(f"{name} takes a non-negative integer")
    if not isinstance(given.get("includeDesignations", False), bool):
        raise BadRequest("includeDesignations takes a boolean")
    query = ExpandQuery(given.get("filter"), given.get("count"), given.get("offset", 0),
                        given.get("includeDesignations", False))
    return FhirResponse(200, terms.service(ctx).expand(vs, query))


async def _validate_code(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """Whether a code, Coding or CodeableConcept is in the value set."""
    given = _given("validate-code", request, ctx)
    vs = await _value_set("validate-code", request, ctx, given)
    codings: list[Coded] = []
    if "code" in given:
        codings.append(Coded(given.get("system"), str(given["code"]), given.get("display")))
    elif "system" in given or "display" in given:
        raise BadRequest("$validate-code: system and display go with code")
    if "coding" in given:
        codings.append(_coded(given["coding"], "coding"))
    if "codeableConcept" in given:
        concept = given["codeableConcept"]
        found = concept.get("coding") if isinstance(concept, dict) else None
        if not isinstance(found, list) or not found:
            raise BadRequest("codeableConcept needs at least one coding")
        codings += [_coded(c, "codeableConcept.coding") for c in found]
    return FhirResponse(200, terms.service(ctx).validate_code(vs, codings))


def _one(given: dict[str, Any], code: str, coding: str, operation: str) -> Coded:
    if code in given and coding in given:
        raise BadRequest(f"${operation} takes {code} or {coding}, not both")
    if coding in given:
        found = _coded(given[coding], coding)
        return Coded(found.system or given.get("system"), found.code, found.display,
                     found.version or given.get("version"))
    if code not in given:
        raise BadRequest(f"${operation} needs {code} (with system) or {coding}")
    return Coded(given.get("system"), str(given[code]), None, given.get("version"))


async def lookup(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """CodeSystem/$lookup: a code's display, designations and properties."""
    given = _given("lookup", request, ctx)
    return FhirResponse(200, terms.service(ctx).lookup(_one(given, "code", "coding",
                                                            "lookup")))


async def subsumes(request: FhirRequest, ctx: ServiceContext) -> FhirResponse:
    """CodeSystem/$subsumes: how code A relates to code B in their code system."""
    given = _given("subsumes", request, ctx)
    code_a = _one(given, "codeA", "codingA", "subsumes")
    code_b = _one(given, "codeB", "codingB", "subsumes")
    return FhirResponse(200, terms.service(ctx).subsumes(code_a, code_b))
