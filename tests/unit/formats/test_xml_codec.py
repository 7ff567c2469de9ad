"""The XML codec's rules, each on a small resource (http://hl7.org/fhir/R4/xml.html)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from lxml import etree

from fhir_server.errors import BadRequest, Unprocessable
from fhir_server.formats.xml_read import read_xml
from fhir_server.formats.xml_write import bundle_chunks, to_xml, xhtml
from fhir_server.service.write import dumps
from tests.data import fhir_r4_example

_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
_XHTML = "http://www.w3.org/1999/xhtml"


def _xml(body: str) -> bytes:
    return f'<Patient xmlns="http://hl7.org/fhir">{body}</Patient>'.encode()


def test_element_order_follows_the_definition_not_the_json() -> None:
    resource = {"gender": "male", "name": [{"given": ["A"], "family": "B"}],
                "resourceType": "Patient", "id": "p1", "active": True}
    assert to_xml(resource).decode() == (
        f'{_HEAD}<Patient xmlns="http://hl7.org/fhir"><id value="p1"/>'
        '<active value="true"/><name><family value="B"/><given value="A"/></name>'
        '<gender value="male"/></Patient>')


def test_primitive_id_and_extensions_and_element_attributes() -> None:
    resource = {"resourceType": "Patient", "birthDate": "1974-12-25", "_birthDate": {
        "id": "b", "extension": [{"url": "http://e.org/t",
                                  "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "name": [{"id": "n1", "given": ["Jim", None], "_given": [None, {"extension": [
            {"url": "http://e.org/x", "valueBoolean": False}]}]}]}
    text = to_xml(resource).decode()
    assert ('<name id="n1"><given value="Jim"/><given><extension url="http://e.org/x">'
            '<valueBoolean value="false"/></extension></given></name>') in text
    assert ('<birthDate id="b" value="1974-12-25"><extension url="http://e.org/t">'
            '<valueDateTime value="1974-12-25T14:35:45-05:00"/></extension></birthDate>'
            ) in text
    assert read_xml(text.encode(), 64) == resource


def test_decimals_keep_their_text_both_ways() -> None:
    stored = ('{"resourceType":"Observation","status":"final","code":{"text":"w"},'
              '"valueQuantity":{"value":72.50,"unit":"kg"},"component":[{"code":{"text":"e"},'
              '"valueQuantity":{"value":1.50e3}}]}')
    text = to_xml(stored)
    assert b'<value value="72.50"/>' in text and b'<value value="1.50e3"/>' in text
    back = read_xml(text, 64)
    value = back["valueQuantity"]["value"]
    assert type(value) is Decimal and str(value) == "72.50"
    # the digits are kept; an exponent comes back in Python's notation
    assert json.loads(dumps(back), parse_float=str)["component"][0]["valueQuantity"][
        "value"] == "1.50E+3"
    assert '"value":72.50' in dumps(back)


def test_integers_and_booleans_are_typed() -> None:
    resource = read_xml(_xml('<multipleBirthInteger value="2"/><active value="false"/>'), 64)
    assert resource == {"resourceType": "Patient", "active": False, "multipleBirthInteger": 2}
    # a lexical form the type does not allow stays a string: validation names it (422)
    assert read_xml(_xml('<active value="yes"/>'), 64)["active"] == "yes"


def test_contained_and_bundle_resources_sit_inside_their_container() -> None:
    resource = {"resourceType": "Patient", "contained": [
        {"resourceType": "Organization", "id": "o", "name": "Acme"}],
        "managingOrganization": {"reference": "#o"}}
    text = to_xml(resource).decode()
    assert ('<contained><Organization><id value="o"/><name value="Acme"/></Organization>'
            '</contained>') in text
    assert read_xml(text.encode(), 64) == resource


def test_bundle_written_in_pieces_is_the_whole_document() -> None:
    entries = [{"fullUrl": f"urn:uuid:{n}", "resource": orjson.Fragment(
        orjson.dumps({"resourceType": "Patient", "id": str(n)}))} for n in range(50)]
    bundle = {"resourceType": "Bundle", "type": "searchset", "link": [
        {"relation": "self", "url": "http://x/fhir/Patient"}], "entry": entries}
    pieces = list(bundle_chunks(bundle, False, 400))
    assert len(pieces) > 3
    whole = b"".join(pieces)
    assert whole == to_xml({**bundle, "entry": [
        {**e, "resource": orjson.loads(orjson.dumps(e["resource"]))} for e in entries]})
    back = read_xml(whole, 64)
    assert [e["resource"]["id"] for e in back["entry"]] == [str(n) for n in range(50)]


def test_pretty_printing_indents_and_reads_back_the_same() -> None:
    text = fhir_r4_example("Patient-example.json").read_text()
    pretty = to_xml(text, pretty=True)
    assert pretty.startswith(f'{_HEAD}\n<Patient xmlns="http://hl7.org/fhir">\n  <id '.encode())
    assert read_xml(pretty, 64) == read_xml(to_xml(text), 64)


def test_narrative_is_literal_xhtml() -> None:
    div = f'<div xmlns="{_XHTML}"><p>a &amp; b</p><!-- c --></div>'
    assert xhtml(div) == div  # kept byte for byte
    assert xhtml("<div><p>x</p></div>") == f'<div xmlns="{_XHTML}"><p>x</p></div>'
    # not XML at all: kept as text, still a well-formed document
    assert xhtml("<div>&nbsp;<b></div>") == (
        f'<div xmlns="{_XHTML}">&lt;div&gt;&amp;nbsp;&lt;b&gt;&lt;/div&gt;</div>')
    resource = read_xml(_xml(f'<text><status value="generated"/>{div}</text>'), 64)
    assert resource["text"]["div"] == div


def test_strings_that_attributes_would_normalise_are_escaped() -> None:
    resource = {"resourceType": "Patient", "name": [{"text": 'a\n"b"\t<c> & d\r'}]}
    text = to_xml(resource)
    assert b'<text value="a&#10;&quot;b&quot;&#9;&lt;c&gt; &amp; d&#13;"/>' in text
    assert read_xml(text, 64) == resource


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>',
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    b'<Patient xmlns="http://hl7.org/fhir"><id value="&lol2;"/></Patient>',
])
def test_dtds_and_entities_are_refused(body: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        read_xml(body, 64)
    assert caught.value.code == "security"


@pytest.mark.parametrize(("body", "message"), [
    (b"", "empty"),
    (b"<Patient", "not well-formed"),
    (b"<Patient/>", "not a FHIR resource"),
    (b'<Banana xmlns="http://hl7.org/fhir"/>', "not a FHIR resource"),
    (_xml('<active value="true">x</active>'), "value attributes"),
    (_xml('<active value="true" colour="red"/>'), "unexpected attribute"),
    (_xml("<active/>"), "value attribute or extensions"),
    (_xml('<x:active xmlns:x="urn:x" value="true"/>'), "namespace"),
    (_xml("<text><div/></text>"), "XHTML div"),
    (_xml('<contained><Patient/><Patient/></contained>'), "exactly one"),
    ('<Patient xmlns="http://hl7.org/fhir"><id value="é"/></Patient>'.encode("latin-1"),
     "UTF-8"),
])
def test_malformed_xml_is_a_bad_request(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        read_xml(body, 64)
    assert message in caught.value.diagnostics


def test_unknown_or_repeated_single_elements_are_unprocessable() -> None:
    with pytest.raises(Unprocessable) as caught:
        read_xml(_xml('<banana value="1"/>'), 64)
    assert caught.value.diagnostics == "Patient.banana: unknown element"
    with pytest.raises(Unprocessable):
        read_xml(_xml('<gender value="male"/><gender value="female"/>'), 64)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    deep = "<extension url=\"u\">" * 40 + '<valueString value="x"/>' + "</extension>" * 40
    with pytest.raises(BadRequest) as caught:
        read_xml(_xml(deep), 32)
    assert caught.value.code == "structure"
    assert read_xml(_xml(deep), 200)["extension"][0]["url"] == "u"


# The XML templates of the R4 pages (patient.html#resource, datatypes.html#HumanName,
# observation.html#resource), written out here: the order the official XML form uses,
# checked independently of the table built from the StructureDefinitions.
_PATIENT_ORDER = ["id", "meta", "implicitRules", "language", "text", "contained", "extension",
                  "modifierExtension", "identifier", "active", "name", "telecom", "gender",
                  "birthDate", "deceasedBoolean", "deceasedDateTime", "address",
                  "maritalStatus", "multipleBirthBoolean", "multipleBirthInteger", "photo",
                  "contact", "communication", "generalPractitioner", "managingOrganization",
                  "link"]
_HUMAN_NAME_ORDER = ["use", "text", "family", "given", "prefix", "suffix", "period"]
_CONTACT_ORDER = ["relationship", "name", "telecom", "address", "gender", "organization",
                  "period"]


def _names(element: Any) -> list[str]:
    return [etree.QName(e).localname for e in element if isinstance(e.tag, str)]


def _follows(names: list[str], order: list[str]) -> bool:
    positions = [order.index(n) for n in names]
    return positions == sorted(positions)


def test_official_example_in_the_official_order() -> None:
    text = fhir_r4_example("Patient-example.json").read_text()
    root = etree.fromstring(to_xml(text))
    ns = {"f": "http://hl7.org/fhir"}
    names = _names(root)
    assert names == ["id", "text", "identifier", "active", "name", "name", "name",
                     "telecom", "telecom", "telecom", "telecom", "gender", "birthDate",
                     "deceasedBoolean", "address", "contact", "managingOrganization"]
    assert _follows(names, _PATIENT_ORDER)
    for name in root.findall("f:name", ns):
        assert _follows(_names(name), _HUMAN_NAME_ORDER)
    contact = root.find("f:contact", ns)
    assert _follows(_names(contact), _CONTACT_ORDER)
    # the patient-birthTime extension of birthDate, as patient-example.xml writes it
    birth = root.find("f:birthDate", ns)
    assert etree.tostring(birth).decode() == (
        '<birthDate xmlns="http://hl7.org/fhir" value="1974-12-25"><extension '
        'url="http://hl7.org/fhir/StructureDefinition/patient-birthTime"><valueDateTime '
        'value="1974-12-25T14:35:45-05:00"/></extension></birthDate>')
    family = contact.find("f:name/f:family", ns)
    assert etree.tostring(family, encoding="unicode") == (
        '<family xmlns="http://hl7.org/fhir" value="du Marché"><extension '
        'url="http://hl7.org/fhir/StructureDefinition/humanname-own-prefix"><valueString '
        'value="VV"/></extension></family>')
