"""The terminology operations over one catalog: ``ValueSet/$expand``,
``ValueSet/$validate-code``, ``CodeSystem/$lookup``, ``CodeSystem/$subsumes``, and what
search asks (``:in``/``:not-in`` members, ``:above``/``:below`` codes).

Inputs arrive parsed (``fhir_server.api.terminology`` reads queries and Parameters);
answers are FHIR resources as dicts; failures are the server's own errors.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_server.errors import BadRequest, NotFound, Unprocessable
from fhir_server.terminology.codesystems import Catalog, CodeSystem, Concept
from fhir_server.terminology.expand import CannotExpand, Code, Entry, Expander
from fhir_server.terminology.hierarchy import ancestors, descendants, subsumes

#: the most codes one $expand answers (a larger ``count`` is cut to it)
MAX_COUNT = 10_000


@dataclass(frozen=True, slots=True)
class Coded:
    """A code to check or look up: from ``code``+``system``, a Coding, or one coding of
    a CodeableConcept."""

    system: str | None
    code: str
    display: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ExpandQuery:
    """$expand's paging and filtering parameters."""

    filter: str | None = None
    count: int | None = None
    offset: int = 0
    include_designations: bool = False


def _cannot(exc: CannotExpand) -> Exception:
    if exc.code == "not-found":
        return NotFound(exc.message)
    return Unprocessable(exc.message, code=exc.code)


class TerminologyService:
    """Answers the terminology operations from the catalog (shared by every request)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.expander = Expander(catalog)

    # -- what search uses -------------------------------------------------------------
    def members(self, url: str) -> frozenset[Code] | None:
        """``:in``/``:not-in``: the (system, code) pairs of a value set, or None."""
        return self.expander.members(url)

    def related(self, system: str, code: str, modifier: str) -> tuple[str, ...] | None:
        """``:below`` (code and its descendants) / ``:above`` (and its ancestors) in
        ``system``; None when the server does not hold that system's hierarchy."""
        held = self.catalog.code_system(system)
        if held is None or not held.hierarchical:
            return None
        walk = descendants if modifier == "below" else ancestors
        return tuple(walk(held, code))

    # -- resolving ---------------------------------------------------------------------
    def value_set_by_id(self, vs_id: str) -> dict[str, Any] | None:
        """A shipped or profile-folder ValueSet by id, as a resource (header + compose)."""
        found = self.catalog.value_sets_by_id.get(vs_id)
        return None if found is None else _resource(found)

    def value_set(self, url: str) -> dict[str, Any]:
        """The ValueSet of canonical ``url``; NotFound when the server has none."""
        found = self.catalog.value_set(url)
        if found is None:
            raise NotFound(f"the value set {url} is not known to this server")
        return _resource(found)

    def _code_system(self, system: str | None, operation: str) -> CodeSystem:
        if not system:
            raise BadRequest(f"{operation} needs a system (system, or a coding with one)")
        held = self.catalog.code_system(system)
        if held is None:
            raise NotFound(f"the code system {system} is not known to this server")
        return held

    def _entries(self, vs: dict[str, Any]) -> tuple[Entry, ...]:
        url = vs.get("url")
        known = self.catalog.value_set(url) if isinstance(url, str) else None
        try:
            if known is not None and vs.get("compose") is known.compose:
                return self.expander.expand(known.url)  # the catalog's own: memoized
            return self.expander.expand_compose(vs.get("compose"), vs.get("expansion"),
                                                str(vs.get("url") or "the value set"))
        except CannotExpand as exc:
            raise _cannot(exc) from None

    # -- $expand -----------------------------------------------------------------------
    def expand(self, vs: dict[str, Any], query: ExpandQuery) -> dict[str, Any]:
        """The ValueSet with its ``expansion`` (filtered, then paged)."""
        if query.offset < 0 or (query.count is not None and query.count < 0):
            raise BadRequest("$expand: count and offset must not be negative")
        entries = list(self._entries(vs))
        if query.filter:
            wanted = query.filter.casefold()
            entries = [e for e in entries if wanted in e.code.casefold()
                       or wanted in (e.display or "").casefold()]
        count = MAX_COUNT if query.count is None else min(query.count, MAX_COUNT)
        page = entries[query.offset:query.offset + count]
        parameters: list[dict[str, Any]] = []
        if query.filter:
            parameters.append({"name": "filter", "valueString": query.filter})
        if query.count is not None:
            parameters.append({"name": "count", "valueInteger": query.count})
        if query.offset:
            parameters.append({"name": "offset", "valueInteger": query.offset})
        if query.include_designations:
            parameters.append({"name": "includeDesignations", "valueBoolean": True})
        expansion: dict[str, Any] = {
            "identifier": f"urn:uuid:{uuid.uuid4()}",
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace(
                "+00:00", "Z"),
            "total": len(entries), "offset": query.offset}
        if parameters:
            expansion["parameter"] = parameters
        if page:
            expansion["contains"] = [_contains(e, query.include_designations) for e in page]
        out = {k: v for k, v in vs.items() if k not in ("expansion", "text", "meta")}
        out.setdefault("status", "active")
        out["expansion"] = expansion
        return out

    # -- $validate-code ----------------------------------------------------------------
    def validate_code(self, vs: dict[str, Any], codings: list[Coded]) -> dict[str, Any]:
        """``result`` true when a coding is in the value set; ``message`` why not (or a
        display that differs); ``display`` the code's display."""
        if not codings:
            raise BadRequest("$validate-code needs code (and system), coding or "
                             "codeableConcept")
        entries = self._entries(vs)
        by_code: dict[Code, Entry] = {(e.system, e.code): e for e in entries
                                      if e.listed or not e.abstract}
        url = vs.get("url") or "the value set"
        for coded in codings:
            found = by_code.get((coded.system or "", coded.code)) if coded.system else next(
                (e for e in by_code.values() if e.code == coded.code), None)
            if found is None:
                continue
            out = [_bool("result", True)]
            if coded.display and found.display and \
                    coded.display.casefold() != found.display.casefold():
                out.append(_string("message", f"the display {coded.display!r} is not the "
                                   f"display of {found.system}#{found.code} "
                                   f"({found.display!r})"))
            if found.display:
                out.append(_string("display", found.display))
            return _parameters(out)
        named = ", ".join(f"{c.system}#{c.code}" if c.system else c.code for c in codings)
        return _parameters([_bool("result", False),
                            _string("message", f"{named} is not in the value set {url}")])

    # -- $lookup -----------------------------------------------------------------------
    def lookup(self, coded: Coded) -> dict[str, Any]:
        """name, version, display, definition, designations and properties of a code
        (``parent``/``child`` from the hierarchy, ``inactive``)."""
        held = self._code_system(coded.system, "$lookup")
        concept = _concept(held, coded.code)
        out = [_string("name", held.title or held.name or held.url)]
        if held.version:
            out.append(_string("version", held.version))
        out.append(_string("display", concept.display or concept.code))
        if concept.definition:
            out.append({"name": "definition", "valueString": concept.definition})
        for language, use_system, use_code, value in concept.designations:
            part: list[dict[str, Any]] = []
            if language:
                part.append({"name": "language", "valueCode": language})
            if use_code:
                part.append({"name": "use", "valueCoding": {
                    **({"system": use_system} if use_system else {}), "code": use_code}})
            part.append(_string("value", value))
            out.append({"name": "designation", "part": part})
        skip = {"parent", "child", "subsumedBy", "inactive"}
        for code, key, value in concept.properties:
            if code not in skip:
                out.append(_property(code, {key: value}))
        for parent in held.parents.get(concept.code, ()):
            out.append(_property("parent", {"valueCode": parent}))
        for child in held.children.get(concept.code, ()):
            out.append(_property("child", {"valueCode": child}))
        out.append(_property("inactive", {"valueBoolean": concept.inactive}))
        return _parameters(out)

    # -- $subsumes ---------------------------------------------------------------------
    def subsumes(self, code_a: Coded, code_b: Coded) -> dict[str, Any]:
        """``outcome``: equivalent | subsumes | subsumed-by | not-subsumed."""
        if code_a.system and code_b.system and code_a.system != code_b.system:
            raise BadRequest(f"$subsumes compares codes of one system, not {code_a.system} "
                             f"and {code_b.system}")
        held = self._code_system(code_a.system or code_b.system, "$subsumes")
        _concept(held, code_a.code)
        _concept(held, code_b.code)
        return _parameters([{"name": "outcome",
                             "valueCode": subsumes(held, code_a.code, code_b.code)}])


def _concept(held: CodeSystem, code: str) -> Concept:
    concept = held.concepts.get(code)
    if concept is None:
        raise NotFound(f"the code {code!r} is not in the code system {held.url}")
    return concept


def _resource(vs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "ValueSet"}
    for key in ("id", "url", "version", "name", "title"):
        if getattr(vs, key):
            out[key] = getattr(vs, key)
    out["status"] = "active"
    if vs.compose is not None:
        out["compose"] = vs.compose
    elif vs.expansion is not None:
        out["expansion"] = vs.expansion
    return out


def _contains(entry: Entry, designations: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"system": entry.system}
    if entry.version:
        item["version"] = entry.version
    if entry.abstract:
        item["abstract"] = True
    if entry.inactive:
        item["inactive"] = True
    item["code"] = entry.code
    if entry.display:
        item["display"] = entry.display
    if designations and entry.concept is not None and entry.concept.designations:
        item["designation"] = [
            {**({"language": lang} if lang else {}),
             **({"use": {**({"system": us} if us else {}), "code": uc}} if uc else {}),
             "value": value}
            for lang, us, uc, value in entry.concept.designations]
    return item


def _parameters(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": parts}


def _bool(name: str, value: bool) -> dict[str, Any]:
    return {"name": name, "valueBoolean": value}


def _string(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "valueString": value}


def _property(code: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"name": "property", "part": [{"name": "code", "valueCode": code},
                                         {"name": "value", **value}]}
