"""FHIR XML to FHIR JSON (http://hl7.org/fhir/R4/xml.html), safely.

The body is parsed by lxml with no DTD loaded, no entity resolved and no network, and a
document holding a DOCTYPE or an entity declaration is refused before parsing (XXE,
"billion laughs"). The JSON built is what a JSON client would have sent: primitives
typed by the definitions (``decimal`` as a ``Decimal``, every digit kept), repeating
elements as arrays, ids and extensions of primitives as ``_name`` members, the ``div``
as its XHTML text. Element order is not enforced on input (the JSON form has none).
"""

from __future__ import annotations

import re
import threading
from copy import deepcopy
from decimal import Decimal
from typing import Any

from lxml import etree

from fhir_server.errors import BadRequest, Unprocessable
from fhir_server.formats.xml_layout import FHIR_NS, XHTML_NS, Child, Kind, Layout, layout

_BOM = b"\xef\xbb\xbf"
_REFUSED = (b"<!DOCTYPE", b"<!ENTITY")
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_FHIR = f"{{{FHIR_NS}}}"
_FHIR_LENGTH = len(_FHIR)
_DIV = f"{{{XHTML_NS}}}div"
_local = threading.local()


def safe_parser() -> etree.XMLParser:
    """This thread's parser (lxml parsers are not shared between threads): no DTD,
    no entity expansion, no network, no huge trees; comments and PIs kept (a narrative
    holds them)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                 dtd_validation=False, huge_tree=False, remove_comments=False,
                                 remove_pis=False, collect_ids=False, remove_blank_text=False)
        _local.parser = parser
    return parser


def read_xml(raw: bytes, max_depth: int) -> dict[str, Any]:
    """The JSON form of a FHIR XML resource; BadRequest for what is not well-formed,
    safe, UTF-8 FHIR XML, Unprocessable for elements the definitions do not know."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    if not raw.strip():
        raise BadRequest("the request body is empty")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid UTF-8") from None
    for marker in _REFUSED:
        if marker in raw:
            raise BadRequest("the XML body holds a DTD or an entity declaration "
                             f"({marker.decode()}); they are refused (XXE)", code="security")
    try:
        root = etree.fromstring(raw, safe_parser())
    except etree.XMLSyntaxError as exc:
        code = "structure" if "depth" in str(exc).lower() else "invalid"
        raise BadRequest(f"the request body is not well-formed XML: {exc}",
                         code=code) from None
    tree = root.getroottree()
    encoding = (tree.docinfo.encoding or "UTF-8").upper()
    if encoding not in ("UTF-8", "UTF8") or tree.docinfo.doctype:
        raise BadRequest(f"the XML body must be UTF-8 without a DOCTYPE (it says "
                         f"{encoding})")
    return _Reader(layout(), max_depth).resource(root, 1)


def _split(tag: Any) -> tuple[str, str]:
    if not isinstance(tag, str):
        return "", ""
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, local


def _no_text(text: str | None, where: str) -> None:
    if text is not None and text.strip():
        raise BadRequest(f"{where}: FHIR XML holds values in value attributes, not text "
                         f"({text.strip()[:40]!r})")


def typed(kind: Kind, text: str) -> Any:
    """A primitive's JSON value from its ``value`` attribute; a lexical form the type
    does not allow stays a string, for validation to name."""
    if kind is Kind.BOOLEAN and text in ("true", "false"):
        return text == "true"
    if kind is Kind.INTEGER and _INTEGER.fullmatch(text):
        return int(text)
    if kind is Kind.DECIMAL and _DECIMAL.fullmatch(text):
        # a plain Decimal (the validator takes no subclass): every digit is kept, an
        # exponent is written back as Python does (1.50e3 as 1.50E+3)
        return Decimal(text)
    return text


class _Reader:
    def __init__(self, table: Layout, max_depth: int) -> None:
        self.table = table
        self.max_depth = max_depth

    def resource(self, element: Any, depth: int) -> dict[str, Any]:
        namespace, kind = _split(element.tag)
        if namespace != FHIR_NS or kind not in self.table.resource_types:
            raise BadRequest(f"<{kind or element.tag}> in namespace {namespace or '(none)'} "
                             f"is not a FHIR resource (expected a resource type in {FHIR_NS})")
        out: dict[str, Any] = {"resourceType": kind}
        out.update(self.structure(element, kind, kind, depth))
        return out

    def structure(self, element: Any, structure: str, where: str, depth: int
                  ) -> dict[str, Any]:
        """The members of a resource, data type or backbone element."""
        if depth > self.max_depth:
            raise BadRequest(f"the XML nesting is deeper than {self.max_depth} levels",
                             code="structure")
        table = self.table.children(structure)
        out: dict[str, Any] = {}
        for key, value in element.items():
            child = table.get(key)
            if child is None or not child.attribute:
                raise BadRequest(f"{where}: unexpected attribute {key!r}")
            out[key] = value
        _no_text(element.text, where)
        found: dict[str, tuple[Child, list[Any], list[Any]]] = {}
        for sub in element:
            tag = sub.tag
            if sub.tail is not None:
                _no_text(sub.tail, where)
            if not isinstance(tag, str):
                continue  # comments and PIs
            if tag.startswith(_FHIR):
                namespace, name = FHIR_NS, tag[_FHIR_LENGTH:]
            else:
                namespace, name = _split(tag)
            child = table.get(name)
            if child is None or child.attribute or (
                    namespace != FHIR_NS and child.kind is not Kind.XHTML):
                if namespace != FHIR_NS:
                    raise BadRequest(f"{where}.{name}: element in namespace "
                                     f"{namespace or '(none)'}, not {FHIR_NS}")
                raise Unprocessable(f"{where}.{name}: unknown element", code="structure")
            slot = found.get(name)
            if slot is None:
                slot = found[name] = (child, [], [])
            value, extra = self.element(sub, child, f"{where}.{name}",
                                        depth + (2 if child.array else 1))
            slot[1].append(value)
            slot[2].append(extra)
        for name, (child, values, extras) in found.items():
            if not child.array and len(values) > 1:
                raise Unprocessable(f"{where}.{name}: occurs {len(values)} times; at most "
                                    "once", code="structure")
            if any(v is not None for v in values):
                out[name] = values if child.array else values[0]
            if any(e is not None for e in extras):
                out["_" + name] = extras if child.array else extras[0]
        return out

    def element(self, sub: Any, child: Child, path: str, depth: int) -> tuple[Any, Any]:
        """An element's JSON value and, for a primitive, its ``_name`` object (or None)."""
        kind = child.kind
        if kind is Kind.XHTML:
            if sub.tag != _DIV:
                raise BadRequest(f"{path}: the narrative must be an XHTML div in {XHTML_NS}")
            div = deepcopy(sub)
            div.tail = None
            etree.cleanup_namespaces(div)
            return str(etree.tostring(div, encoding="unicode")), None
        if kind is Kind.RESOURCE:
            if sub.attrib:
                raise BadRequest(f"{path}: a resource container takes no attributes")
            _no_text(sub.text, path)
            inner = [e for e in sub if isinstance(e.tag, str)]
            if len(inner) != 1:
                raise BadRequest(f"{path}: must hold exactly one resource, not {len(inner)}")
            _no_text(inner[0].tail, path)
            return self.resource(inner[0], depth), None
        if kind is Kind.COMPLEX:
            return self.structure(sub, child.structure, path, depth), None
        return self.primitive(sub, child, path, depth)

    def primitive(self, sub: Any, child: Child, path: str, depth: int) -> tuple[Any, Any]:
        extra: dict[str, Any] = {}
        value = None
        for key, text in sub.items():
            if key == "value":
                value = typed(child.kind, text)
            elif key == "id":
                extra["id"] = text
            else:
                raise BadRequest(f"{path}: unexpected attribute {key!r}")
        _no_text(sub.text, path)
        extensions = []
        for inner in sub:
            _no_text(inner.tail, path)
            if not isinstance(inner.tag, str):
                continue
            if inner.tag != f"{_FHIR}extension":
                raise BadRequest(f"{path}: a primitive holds only extension elements, not "
                                 f"{_split(inner.tag)[1]}")
            extensions.append(self.structure(inner, "Extension", f"{path}.extension",
                                             depth + 2))
        if extensions:
            extra["extension"] = extensions
        if value is None and not extra:
            raise BadRequest(f"{path}: a primitive element needs a value attribute or "
                             "extensions")
        return value, extra or None
