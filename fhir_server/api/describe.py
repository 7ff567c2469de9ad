"""Descriptions of search parameters for documents that show them one type at a time
(OpenAPI, the CapabilityStatement): the part about that type, links made absolute."""

from __future__ import annotations

import re

from fhir_server.search.registry import SearchParam

#: Where the relative links of the specification's own texts point.
SPEC_BASE = "https://hl7.org/fhir/R4/"
_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#|/)([^)\s]+)\)")
_BULLET = re.compile(r"^\s*\*\s*\[(\w+)\]\([^)]*\):\s*(.*)$")


def absolute_links(markdown: str) -> str:
    """Markdown with its relative links (``[x](patient.html)``) pointing into the R4
    specification."""
    return _LINK.sub(lambda m: f"]({SPEC_BASE}{m[1]})", markdown)


def describe(param: SearchParam) -> str:
    """``param``'s description as it applies to its resource type, whole, with absolute
    links: of a shared definition ("Multiple Resources: * [Type](...): text ...") the
    line of that type."""
    text = param.description.replace("\r\n", "\n").strip()
    if text.startswith("Multiple Resources"):
        for line in text.split("\n"):
            bullet = _BULLET.match(line)
            if bullet and bullet[1] == param.resource_type:
                text = bullet[2].strip()
                break
    return absolute_links(text)
