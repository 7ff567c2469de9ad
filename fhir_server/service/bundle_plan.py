"""Planning a batch or transaction Bundle: entries, their URLs, ids and references.

The API parses Bundles with decimals kept exact (``parse_json_exact``) because entry
resources are re-serialized after their references are rewritten.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fhir_server.errors import BadRequest

#: Transaction processing order (http.html#trules): DELETE, POST, PUT/PATCH, GET/HEAD.
ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class Entry:
    """One request entry of a Bundle, as understood."""

    index: int
    method: str
    url: str
    resource_type: str
    id: str | None
    criteria: str | None
    version: str | None
    full_url: str | None
    resource: Any
    if_match: str | None = None
    if_none_match: str | None = None
    if_none_exist: str | None = None
    if_modified_since: str | None = None
    #: the id this entry's resource gets (POST: new; conditional: resolved)
    target_id: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How errors name this entry."""
        return f"entry[{self.index}] ({self.method} {self.url})"


def split_url(url: str, base_url: str) -> tuple[str, str | None, str | None, str | None]:
    """(type, id, version, criteria) of an entry request URL, relative or on our base."""
    if "://" in url:
        if base_url and url.startswith(base_url.rstrip("/") + "/"):
            url = url[len(base_url.rstrip("/")) + 1:]
        else:
            parts = urlsplit(url)
            path = parts.path
            # Keep the last Type[/id[/_history/v]] part of a foreign-looking absolute URL.
            segments = [s for s in path.split("/") if s]
            tail = segments[-4:] if "_history" in segments[-4:] else segments[-2:]
            url = "/".join(tail) + (f"?{parts.query}" if parts.query else "")
    url = url.lstrip("/")
    path, _, query = url.partition("?")
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise BadRequest(f"request.url {url!r} names no resource type")
    rtype = segments[0]
    rid = segments[1] if len(segments) > 1 else None
    version = None
    if len(segments) == 4 and segments[2] == "_history":
        version = segments[3]
    elif len(segments) > 2:
        raise BadRequest(f"request.url {url!r} is not a supported entry URL")
    return rtype, rid, version, (query if "?" in url else None)


def entries(bundle: dict[str, Any], base_url: str) -> list[Entry]:
    """The request entries of a batch/transaction Bundle; BadRequest when malformed."""
    raw_entries = bundle.get("entry", [])
    if not isinstance(raw_entries, list):
        raise BadRequest("Bundle.entry must be an array")
    out: list[Entry] = []
    for index, raw in enumerate(raw_entries):
        if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
            raise BadRequest(f"entry[{index}] has no request")
        request = raw["request"]
        method = str(request.get("method", "")).upper()
        url = request.get("url")
        if method not in ORDER or not isinstance(url, str) or not url:
            raise BadRequest(f"entry[{index}]: request needs a method "
                             "(GET, HEAD, POST, PUT, PATCH, DELETE) and a url")
        rtype, rid, version, criteria = split_url(url, base_url)
        resource = raw.get("resource")
        if method in ("POST", "PUT") and not isinstance(resource, dict):
            raise BadRequest(f"entry[{index}] ({method} {url}) has no resource")
        if method == "POST" and (rid is not None or criteria is not None):
            raise BadRequest(f"entry[{index}]: POST goes to a type, not {url!r}")
        if method in ("PUT", "PATCH", "DELETE") and rid is None and criteria is None:
            raise BadRequest(f"entry[{index}]: {method} needs an id or search criteria")
        out.append(Entry(
            index=index, method=method, url=url, resource_type=rtype, id=rid,
            criteria=criteria, version=version, full_url=raw.get("fullUrl"),
            resource=resource, if_match=request.get("ifMatch"),
            if_none_match=request.get("ifNoneMatch"),
            if_none_exist=request.get("ifNoneExist"),
            if_modified_since=request.get("ifModifiedSince"),
        ))
    return out


def reference_holders(value: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """Every object holding a ``reference`` string anywhere in ``value`` (extensions and
    contained resources included), with that string; the caller may replace it."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if key == "reference" and isinstance(child, str):
                    yield node, child
                elif isinstance(child, dict | list):
                    stack.append(child)
        elif isinstance(node, list):
            stack.extend(c for c in node if isinstance(c, dict | list))


def is_conditional(reference: str) -> bool:
    """``Type?query``: a conditional reference, resolved by search."""
    return "?" in reference and "/" not in reference.split("?", 1)[0]


def rewrite_references(value: Any, mapping: dict[str, str]) -> list[str]:
    """Replace references to bundle fullUrls in place; return the conditional ones found."""
    conditional: list[str] = []
    for node, reference in reference_holders(value):
        target = mapping.get(reference)
        if target is not None:
            node["reference"] = target
        elif is_conditional(reference):
            conditional.append(reference)
    return conditional


def replace_references(value: Any, resolved: dict[str, str]) -> None:
    """Replace resolved conditional references (``Type?query`` -> ``Type/id``) in place."""
    for node, reference in reference_holders(value):
        if reference in resolved:
            node["reference"] = resolved[reference]
