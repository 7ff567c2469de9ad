"""FHIR JSON to FHIR XML (http://hl7.org/fhir/R4/xml.html).

Elements come in StructureDefinition order (``xml_layout``), primitives as ``value``
attributes with their ``_name`` id and extensions on the same element, element ids and
``Extension.url`` as attributes, resources inside their container element, and the
narrative's ``div`` as literal XHTML. Numbers are written as their JSON text: stored
JSON is read with decimals kept as text, so ``72.50`` stays ``72.50``. A Bundle can be
written a few entries at a time (:func:`bundle_chunks`), never whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import orjson
from lxml import etree

from fhir_server.formats.xml_layout import FHIR_NS, XHTML_NS, Child, Kind, Layout, layout
from fhir_server.formats.xml_read import safe_parser

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
#: Newlines and tabs are escaped in attributes: a parser would read them as blanks.
_ATTRIBUTE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                            "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
#: Characters XML 1.0 cannot hold at all (JSON strings can): sent as U+FFFD.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
#: Unknown members (never in validated content) go after the known ones, as generic
#: elements, rather than being lost.
_LAST = 1 << 30
_EMPTY_CHILD = Child("", _LAST, Kind.STRING, "", False, False)


def loads_exact(text: str | bytes) -> Any:
    """JSON with every non-integer number kept as its text (for writing it again)."""
    return json.loads(text, parse_float=str)


def to_xml(resource: Any, pretty: bool = False) -> bytes:
    """The XML document of one resource (a dict, or stored JSON text)."""
    if isinstance(resource, (str, bytes)):
        resource = loads_exact(resource)
    writer = _Writer(layout(), pretty)
    writer.out.append(_DECLARATION)
    writer.resource(_plain(resource), 0, True)
    return "".join(writer.out).encode("utf-8")


def bundle_chunks(bundle: dict[str, Any], pretty: bool, chunk_chars: int) -> Iterator[bytes]:
    """The XML of a Bundle in pieces of about ``chunk_chars`` characters, an entry
    never split: the whole document is never in memory."""
    writer = _Writer(layout(), pretty)
    out = writer.out
    out.append(_DECLARATION)
    attrs, members = writer.members("Bundle", bundle)
    out.append(f'{writer.newline(0)}<Bundle xmlns="{FHIR_NS}"{attrs}>')
    size = 0
    for name, child, value, ext in members:
        if name != "entry" or not isinstance(value, list):
            writer.member(name, child, value, ext, 1)
            continue
        for entry in value:
            start = len(out)
            writer.one(name, child, _plain(entry), None, 1)
            size += sum(len(out[index]) for index in range(start, len(out)))
            if size >= chunk_chars:
                yield "".join(out).encode("utf-8")
                out.clear()
                size = 0
    out.append(f"{writer.newline(0)}</Bundle>")
    yield "".join(out).encode("utf-8")


def _plain(value: Any) -> Any:
    """Stored JSON embedded as ``orjson.Fragment`` made a value again (numbers as text)."""
    if isinstance(value, orjson.Fragment):
        return loads_exact(orjson.dumps(value))
    return value


def _text_of(value: Any) -> str:
    """The lexical form of a primitive's JSON value."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return orjson.dumps(value).decode()  # as the JSON form writes it
    text = value if isinstance(value, str) else str(value)  # int, Decimal
    return _NOT_XML.sub("\ufffd", text) if _NOT_XML.search(text) else text


def _attribute(value: Any) -> str:
    return _text_of(value).translate(_ATTRIBUTE)


class _Writer:
    """Appends the XML of values to ``out``."""

    def __init__(self, table: Layout, pretty: bool) -> None:
        self.table = table
        self.pretty = pretty
        self.out: list[str] = []

    def newline(self, depth: int) -> str:
        """What goes before a tag at ``depth`` (nothing unless pretty-printing)."""
        return "\n" + "  " * depth if self.pretty else ""

    def resource(self, resource: Any, depth: int, root: bool) -> None:
        """A resource as its type's element (declaring the namespace at the root)."""
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"),
                                                            str):
            self.generic("resource", resource, depth)
            return
        kind = resource["resourceType"]
        self.complex(kind, kind, resource, depth, f' xmlns="{FHIR_NS}"' if root else "")

    def members(self, structure: str, obj: dict[str, Any]
                ) -> tuple[str, list[tuple[str, Child, Any, Any]]]:
        """An object's attributes (as text) and its other members in XML order: (name,
        child, value, the ``_name`` value)."""
        table = self.table.children(structure)
        attrs: list[str] = []
        found: dict[str, list[Any]] = {}
        for key, value in obj.items():
            if key == "resourceType":
                continue
            extension = key.startswith("_")
            name = key[1:] if extension else key
            child = table.get(name)
            if child is not None and child.attribute:
                if not extension and value is not None:
                    attrs.append(f' {name}="{_attribute(value)}"')
                continue
            slot = found.setdefault(name, [child or _EMPTY_CHILD, None, None])
            slot[2 if extension else 1] = value
        ordered = sorted(found.items(), key=lambda item: item[1][0].order)
        return "".join(attrs), [(name, child, value, ext)
                                for name, (child, value, ext) in ordered]

    def complex(self, tag: str, structure: str, obj: Any, depth: int, extra: str = "") -> None:
        """A structure: its attributes, then its children in order."""
        if not isinstance(obj, dict):
            self.generic(tag, obj, depth)
            return
        attrs, members = self.members(structure, obj)
        if not members:
            self.out.append(f"{self.newline(depth)}<{tag}{extra}{attrs}/>")
            return
        self.out.append(f"{self.newline(depth)}<{tag}{extra}{attrs}>")
        for name, child, value, ext in members:
            self.member(name, child, value, ext, depth + 1)
        self.out.append(f"{self.newline(depth)}</{tag}>")

    def member(self, name: str, child: Child, value: Any, ext: Any, depth: int) -> None:
        """One member, repeated for each item of an array (``_name`` items beside)."""
        if isinstance(value, list) or isinstance(ext, list):
            values = value if isinstance(value, list) else [value]
            exts = ext if isinstance(ext, list) else [ext]
            for index in range(max(len(values), len(exts))):
                self.one(name, child, values[index] if index < len(values) else None,
                         exts[index] if index < len(exts) else None, depth)
        else:
            self.one(name, child, value, ext, depth)

    def one(self, name: str, child: Child, value: Any, ext: Any, depth: int) -> None:
        """One element."""
        value = _plain(value)
        kind = child.kind
        if child is _EMPTY_CHILD:
            self.generic(name, value, depth)
        elif kind is Kind.RESOURCE:
            self.out.append(f"{self.newline(depth)}<{name}>")
            self.resource(value, depth + 1, False)
            self.out.append(f"{self.newline(depth)}</{name}>")
        elif kind is Kind.XHTML and isinstance(value, str):
            self.out.append(self.newline(depth) + xhtml(value))
        elif kind is Kind.COMPLEX:
            self.complex(name, child.structure, value, depth)
        elif value is None and ext is None:
            return  # a null that keeps the arrays of a primitive aligned
        elif isinstance(value, (dict, list)):
            self.generic(name, value, depth)
        else:
            self.primitive(name, value, ext if isinstance(ext, dict) else {}, depth)

    def primitive(self, name: str, value: Any, ext: dict[str, Any], depth: int) -> None:
        """``<name id=".." value="..">`` with the extensions of ``_name`` inside."""
        head = f"{self.newline(depth)}<{name}"
        if ext.get("id") is not None:
            head += f' id="{_attribute(ext["id"])}"'
        if value is not None:
            head += f' value="{_attribute(value)}"'
        extensions = ext.get("extension")
        if not extensions:
            self.out.append(head + "/>")
            return
        self.out.append(head + ">")
        extension = self.table.children("Element").get("extension", _EMPTY_CHILD)
        self.member("extension", extension, extensions, None, depth + 1)
        self.out.append(f"{self.newline(depth)}</{name}>")

    def generic(self, name: str, value: Any, depth: int) -> None:
        """A member the definitions do not know, written by its JSON shape."""
        if isinstance(value, list):
            for item in value:
                self.generic(name, item, depth)
        elif isinstance(value, dict):
            self.complex(name, "", value, depth)
        elif value is not None:
            self.out.append(f'{self.newline(depth)}<{name} value="{_attribute(value)}"/>')


def xhtml(text: str) -> str:
    """The narrative as literal XHTML: the stored text itself when it is a well-formed
    XHTML ``div`` (no byte changes), the ``div`` put in the XHTML namespace when it
    lacks it, and the text escaped inside an empty ``div`` when it is not XML at all."""
    parser = safe_parser()
    try:
        root = etree.fromstring(text.encode("utf-8"), parser)
    except (etree.XMLSyntaxError, ValueError):
        root = None
    if root is not None and root.tag == f"{{{XHTML_NS}}}div":
        if text.lstrip().startswith(("<div", f"<{root.prefix}:div")):
            return text
        return str(etree.tostring(root, encoding="unicode"))  # no prolog inside a document
    if root is not None and root.tag == "div":
        try:
            wrapped = etree.fromstring(f'<w xmlns="{XHTML_NS}">{text}</w>'.encode(), parser)
            return str(etree.tostring(wrapped[0], encoding="unicode"))
        except (etree.XMLSyntaxError, IndexError):
            pass
    return f'<div xmlns="{XHTML_NS}">{_text_of(text).translate(_TEXT)}</div>'


__all__ = ["bundle_chunks", "loads_exact", "to_xml", "xhtml"]
