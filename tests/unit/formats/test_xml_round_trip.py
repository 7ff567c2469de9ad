"""JSON -> XML -> JSON is the identity for every official R4 example.

One difference is allowed, and only in the narrative: an XHTML ``div`` comes back as
lxml writes it (``&quot;`` as ``"``, attributes in double quotes), so divs are compared
as canonical XML (C14N 2.0), which is equal exactly when they are the same XHTML.
Everything else, decimals' digits included (``json.loads(parse_float=Decimal)`` keeps
them), must be equal. Each document is also checked to be in StructureDefinition order.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from fhir_server.formats.xml_layout import layout
from fhir_server.formats.xml_read import read_xml
from fhir_server.formats.xml_write import to_xml
from fhir_server.service.write import dumps
from tests.data import FHIR_R4_EXAMPLE_COUNT, fhir_r4_examples

_FHIR = "{http://hl7.org/fhir}"


def _same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{index}]")
    elif where.endswith(".div") and isinstance(a, str) and a != b:
        assert etree.canonicalize(a) == etree.canonicalize(b), where
    else:
        assert type(a) is type(b) and a == b, where


def _in_order(element: Any, structure: str) -> None:
    """Every element's children come in their definition's order."""
    table = layout().children(structure)
    last = -1
    for child in element:
        if not isinstance(child.tag, str) or not child.tag.startswith(_FHIR):
            continue
        name = child.tag[len(_FHIR):]
        info = table[name]
        assert info.order >= last, f"{structure}.{name} out of order"
        last = info.order
        if info.kind.value == "complex":
            _in_order(child, info.structure)
        elif info.kind.value == "resource":
            inner = next(e for e in child if isinstance(e.tag, str))
            _in_order(inner, inner.tag[len(_FHIR):])


def test_every_example_is_there() -> None:
    assert len(fhir_r4_examples()) == FHIR_R4_EXAMPLE_COUNT


@pytest.mark.parametrize("path", fhir_r4_examples(), ids=lambda p: p.name)
def test_json_xml_json_is_the_identity(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    original = json.loads(text, parse_float=Decimal)
    document = to_xml(text)
    root = etree.fromstring(document)
    assert root.tag == _FHIR + original["resourceType"]
    _in_order(root, original["resourceType"])
    back = json.loads(dumps(read_xml(document, 200)), parse_float=Decimal)
    _same(original, back, original["resourceType"])
