"""The narrative check: ``htmlChecks()`` of txt-1 and txt-2 (R4 narrative.html).

``Narrative.div`` must be one well-formed ``div`` in the XHTML namespace holding only
the basic formatting elements and attributes of HTML 4 (chapters 7-11 and 15), links,
images and inline styles: no script, form, object, frame, head/body or link element, no
event attribute (``on*``), nothing that makes a reader fetch content from elsewhere
(``src`` is allowed on ``img`` only; a ``style`` may not load a ``url(...)``), no
``javascript:``-like URLs in links; and some non-whitespace text or an image (txt-2).
The element and attribute lists are those of the HL7 reference validator.
"""

from __future__ import annotations

import re

from lxml import etree

from fhir_server.formats.xml_read import safe_parser

XHTML_NS = "http://www.w3.org/1999/xhtml"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NS = f"{{{XHTML_NS}}}"
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"

ELEMENTS = _words(
    "p br div h1 h2 h3 h4 h5 h6 a span b em i strong small big tt dfn q var abbr acronym "
    "cite blockquote hr address bdo kbd sub sup ul ol li dl dt dd pre table caption "
    "colgroup col thead tr tfoot tbody th td code samp img map area")
_TAGS = frozenset(f"{_NS}{name}" for name in ELEMENTS)
#: attributes every element may carry
COMMON_ATTRIBUTES = _words(
    "title style class id lang dir accesskey tabindex span width align valign char "
    "charoff abbr axis headers scope rowspan colspan")
#: attributes of one element only (``a.href``)
ELEMENT_ATTRIBUTES = _words(
    "a.href a.name img.src img.border div.xmlns blockquote.cite q.cite a.charset a.type "
    "a.hreflang a.rel a.rev a.shape a.coords img.alt img.longdesc img.height img.width "
    "img.usemap img.ismap map.name area.shape area.coords area.href area.nohref area.alt "
    "table.summary table.width table.border table.frame table.rules table.cellspacing "
    "table.cellpadding pre.space td.nowrap ol.type ol.start ul.type li.value")
#: URL schemes a link may not use: they run code or carry content rather than point
_UNSAFE_SCHEME = re.compile(r"^\s*(javascript|vbscript|data|file)\s*:", re.IGNORECASE)
#: CSS that fetches or runs something
_UNSAFE_STYLE = re.compile(r"url\s*\(|expression\s*\(|@import|behavior\s*:", re.IGNORECASE)


def check_narrative(text: object) -> list[tuple[str, str]]:
    """The problems of a ``Narrative.div`` value: ``(key, message)`` pairs, ``txt-1``
    for the content rules and ``txt-2`` for no content at all (empty: it is valid)."""
    if not isinstance(text, str):
        return []  # the schema reports a div that is no string
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return [("txt-1", "the narrative may not hold a DOCTYPE or entity declaration")]
    try:
        root = etree.fromstring(text.encode("utf-8"), safe_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        return [("txt-1", f"the narrative is not well-formed XHTML: {exc}")]
    if root.tag == "div":
        return [("txt-1", f"the narrative div must be in the XHTML namespace "
                          f"(xmlns=\"{XHTML_NS}\")")]
    if root.tag != f"{_NS}div":
        return [("txt-1", f"the narrative must be one XHTML div, not {root.tag}")]
    problems: list[tuple[str, str]] = []
    content = False
    img = f"{_NS}img"
    for node in root.iter(etree.Element):  # comments and PIs carry no markup
        tag = node.tag
        if not content and ((node.text and not node.text.isspace()) or tag == img or
                            (node is not root and node.tail and not node.tail.isspace())):
            content = True
        if tag in _TAGS and not node.attrib:
            continue  # the common case: an allowed element without attributes
        problems += _check_element(node)
    if not content:
        problems.append(("txt-2", "the narrative has no non-whitespace content"))
    return problems


def _check_element(node: etree._Element) -> list[tuple[str, str]]:
    tag = str(node.tag)
    if not tag.startswith(_NS):
        return [("txt-1", f"the narrative holds an element outside XHTML: {tag}")]
    name = tag[len(_NS):]
    if name not in ELEMENTS:
        return [("txt-1", f"the narrative may not hold a <{name}> element")]
    problems: list[tuple[str, str]] = []
    for raw_attribute, value in node.attrib.items():
        attribute = str(raw_attribute)
        if attribute.startswith(_XML_NS):
            attribute = "xml:" + attribute[len(_XML_NS):]
            if attribute in ("xml:lang", "xml:space"):
                continue
        if attribute.lower().startswith("on"):
            problems.append(("txt-1", f"the narrative may not hold an event attribute "
                                      f"({name}.{attribute})"))
        elif attribute not in COMMON_ATTRIBUTES and f"{name}.{attribute}" not in \
                ELEMENT_ATTRIBUTES:
            problems.append(("txt-1", f"the narrative may not hold the attribute "
                                      f"{name}.{attribute}"))
        elif attribute in ("href", "src", "longdesc", "cite", "usemap") and \
                _UNSAFE_SCHEME.match(str(value)) and not _image_data(name, attribute, value):
            problems.append(("txt-1", f"the narrative may not hold a {value.split(':')[0]}:"
                                      f" URL ({name}.{attribute})"))
        elif attribute == "style" and _UNSAFE_STYLE.search(str(value)):
            problems.append(("txt-1", f"the narrative's styles may not load or run "
                                      f"anything ({name}.style)"))
    return problems


def _image_data(element: str, attribute: str, value: str) -> bool:
    """An inline image (``img src="data:image/png;base64,..."``) fetches nothing."""
    return element == "img" and attribute == "src" and \
        value.strip().lower().startswith("data:image/")
