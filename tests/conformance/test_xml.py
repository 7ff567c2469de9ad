"""FHIR XML over HTTP (http://hl7.org/fhir/R4/xml.html, http.html#mime-type): bodies in
XML on every write, answers in XML wherever JSON is answered, chosen by ``Accept`` or
``_format``. XML is the wire's concern, so these tests run once, over plain HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from lxml import etree

pytestmark = pytest.mark.http_only

FHIR_XML = "application/fhir+xml"
XML_BODY = {"Content-Type": FHIR_XML}
XML_BOTH = {"Content-Type": FHIR_XML, "Accept": FHIR_XML}
NS = {"f": "http://hl7.org/fhir", "h": "http://www.w3.org/1999/xhtml"}
PATIENT_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Patient xmlns="http://hl7.org/fhir">'
    b'<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">'
    b'<p>Peter <b>Xmlson</b></p></div></text>'
    b'<active value="true"/>'
    b'<name><family value="Xmlson"/><given value="Peter"/><given value="James"/></name>'
    b'<gender value="male"/>'
    b'<birthDate value="1974-12-25"><extension '
    b'url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">'
    b'<valueDateTime value="1974-12-25T14:35:45-05:00"/></extension></birthDate>'
    b'</Patient>')


@pytest.fixture
def stored(database_url: str) -> Callable[[], int]:
    def count() -> int:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM resource_history"
                               " WHERE resource_type <> 'AuditEvent'").fetchone()
        assert row is not None
        return int(row[0])

    return count


def _xml(response: httpx.Response, media: str = FHIR_XML) -> Any:
    assert response.headers["content-type"] == f"{media}; charset=utf-8", response.text
    return etree.fromstring(response.content)


def _value(root: Any, path: str) -> list[str]:
    return [str(v) for v in root.xpath(path, namespaces=NS)]


def _create(client: httpx.Client) -> str:
    response = client.post("/Patient", content=PATIENT_XML, headers=XML_BODY)
    assert response.status_code == 201, response.text
    return response.headers["location"].split("/Patient/")[1].split("/")[0]


def test_create_with_xml_stores_the_json_a_client_would_send(client: httpx.Client) -> None:
    pid = _create(client)
    stored = client.get(f"/Patient/{pid}").json()
    assert stored["name"] == [{"family": "Xmlson", "given": ["Peter", "James"]}]
    assert stored["active"] is True
    assert stored["_birthDate"] == {"extension": [{
        "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
        "valueDateTime": "1974-12-25T14:35:45-05:00"}]}
    assert stored["text"]["div"] == ('<div xmlns="http://www.w3.org/1999/xhtml"><p>Peter '
                                     '<b>Xmlson</b></p></div>')


def test_read_and_vread_as_xml(client: httpx.Client) -> None:
    pid = _create(client)
    read = client.get(f"/Patient/{pid}", headers={"Accept": FHIR_XML})
    assert read.status_code == 200
    assert read.headers["etag"] == 'W/"1"'
    root = _xml(read)
    assert root.tag == "{http://hl7.org/fhir}Patient"
    # element order of the definition: id, meta, text, active, name, gender, birthDate
    assert [etree.QName(e).localname for e in root] == [
        "id", "meta", "text", "active", "name", "gender", "birthDate"]
    assert _value(root, "f:id/@value") == [pid]
    assert _value(root, "f:meta/f:versionId/@value") == ["1"]
    assert _value(root, "f:name/f:given/@value") == ["Peter", "James"]
    assert _value(root, "f:birthDate/f:extension/f:valueDateTime/@value") == [
        "1974-12-25T14:35:45-05:00"]
    assert _value(root, "f:text/h:div/h:p/h:b/text()") == ["Xmlson"]
    vread = client.get(f"/Patient/{pid}/_history/1", params={"_format": "xml"})
    assert vread.status_code == 200
    assert vread.content == read.content


@pytest.mark.parametrize(("params", "headers", "media"), [
    ({"_format": "xml"}, {}, FHIR_XML),
    ({"_format": "application/fhir+xml"}, {}, FHIR_XML),
    ({"_format": "text/xml"}, {}, "text/xml"),
    ({"_format": "application/xml"}, {"Accept": "application/fhir+json"}, "application/xml"),
    ({}, {"Accept": "application/xml"}, "application/xml"),
    ({}, {"Accept": "application/fhir+xml; fhirVersion=4.0"}, FHIR_XML),
])
def test_format_and_accept_choose_xml(client: httpx.Client, params: dict[str, str],
                                      headers: dict[str, str], media: str) -> None:
    pid = _create(client)
    response = client.get(f"/Patient/{pid}", params=params, headers=headers)
    assert response.status_code == 200
    assert _value(_xml(response, media), "f:id/@value") == [pid]


def test_pretty_xml(client: httpx.Client) -> None:
    pid = _create(client)
    pretty = client.get(f"/Patient/{pid}", params={"_format": "xml", "_pretty": "true"})
    assert pretty.text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Patient '
                                  'xmlns="http://hl7.org/fhir">\n  <id value=')


def test_update_and_patch_with_xml(client: httpx.Client) -> None:
    pid = _create(client)
    body = PATIENT_XML.replace(b"<Patient xmlns=\"http://hl7.org/fhir\">",
                               f'<Patient xmlns="http://hl7.org/fhir"><id value="{pid}"/>'
                               .encode()).replace(b'"male"', b'"female"')
    updated = client.put(f"/Patient/{pid}", content=body, headers=XML_BOTH)
    assert updated.status_code == 200, updated.text
    assert _value(_xml(updated), "f:gender/@value") == ["female"]
    patch = (b'<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="operation"/>'
             b'<part><name value="type"/><valueCode value="replace"/></part>'
             b'<part><name value="path"/><valueString value="Patient.active"/></part>'
             b'<part><name value="value"/><valueBoolean value="false"/></part>'
             b"</parameter></Parameters>")
    patched = client.patch(f"/Patient/{pid}", content=patch, headers=XML_BOTH)
    assert patched.status_code == 200, patched.text
    root = _xml(patched)
    assert _value(root, "f:active/@value") == ["false"]
    assert _value(root, "f:meta/f:versionId/@value") == ["3"]


def test_decimals_keep_their_digits_through_xml(client: httpx.Client) -> None:
    body = (b'<Observation xmlns="http://hl7.org/fhir"><status value="final"/>'
            b'<code><text value="weight"/></code>'
            b'<valueQuantity><value value="72.50"/><unit value="kg"/></valueQuantity>'
            b"</Observation>")
    created = client.post("/Observation", content=body, headers=XML_BOTH)
    assert created.status_code == 201, created.text
    oid = created.headers["location"].split("/Observation/")[1].split("/")[0]
    as_json = json.loads(client.get(f"/Observation/{oid}").content, parse_float=Decimal)
    assert str(as_json["valueQuantity"]["value"]) == "72.50"
    as_xml = _xml(client.get(f"/Observation/{oid}", params={"_format": "xml"}))
    assert _value(as_xml, "f:valueQuantity/f:value/@value") == ["72.50"]


def test_search_and_history_bundles_in_xml(client: httpx.Client) -> None:
    pid = _create(client)
    search = client.get("/Patient", params={"_id": pid, "_format": "xml"})
    assert search.status_code == 200
    root = _xml(search)
    assert root.tag == "{http://hl7.org/fhir}Bundle"
    assert _value(root, "f:type/@value") == ["searchset"]
    assert _value(root, "f:entry/f:resource/f:Patient/f:id/@value") == [pid]
    assert _value(root, "f:entry/f:search/f:mode/@value") == ["match"]
    history = client.get(f"/Patient/{pid}/_history", headers={"Accept": FHIR_XML})
    assert history.status_code == 200
    root = _xml(history)
    assert _value(root, "f:type/@value") == ["history"]
    assert _value(root, "f:entry/f:request/f:method/@value") == ["POST"]


def test_a_big_searchset_streams_whole(client: httpx.Client) -> None:
    family = "Streamed-xml"
    entries = [{"resource": {"resourceType": "Patient", "name": [{"family": family,
                                                                   "text": "x" * 2000}]},
                "request": {"method": "POST", "url": "Patient"}} for _ in range(60)]
    made = client.post("", json={"resourceType": "Bundle", "type": "batch",
                                 "entry": entries},
                       headers={"Content-Type": "application/fhir+json"})
    assert made.status_code == 200
    answer = client.get("/Patient", params={"family": family, "_count": "60",
                                            "_format": "xml"})
    assert answer.status_code == 200
    assert "content-length" not in answer.headers  # sent in pieces
    assert len(_xml(answer).findall("f:entry", NS)) == 60


def test_errors_are_xml_operation_outcomes(client: httpx.Client) -> None:
    missing = client.get("/Patient/no-such-xml", headers={"Accept": FHIR_XML})
    assert missing.status_code == 404
    root = _xml(missing)
    assert root.tag == "{http://hl7.org/fhir}OperationOutcome"
    assert _value(root, "f:issue/f:severity/@value") == ["error"]
    assert _value(root, "f:issue/f:code/@value") == ["not-found"]
    invalid = client.post("/Patient", content=b'<Patient xmlns="http://hl7.org/fhir">'
                          b'<gender value="banana"/></Patient>', headers=XML_BOTH)
    assert invalid.status_code == 422
    assert _value(_xml(invalid), "f:issue/f:expression/@value") == ["Patient.gender"]
    unknown_route = client.get("/Banana", params={"_format": "xml"})
    assert unknown_route.status_code == 404
    assert _value(_xml(unknown_route), "f:issue/f:code/@value") == ["not-found"]


def test_xxe_is_refused_and_nothing_stored(client: httpx.Client,
                                           stored: Callable[[], int]) -> None:
    before = stored()
    body = (b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<Patient xmlns="http://hl7.org/fhir"><name><text value="&x;"/></name>'
            b"</Patient>")
    response = client.post("/Patient", content=body, headers=XML_BOTH)
    assert response.status_code == 400
    root = _xml(response)
    assert _value(root, "f:issue/f:code/@value") == ["security"]
    assert "root:" not in response.text
    assert stored() == before


def test_transaction_bundle_in_xml(client: httpx.Client) -> None:
    bundle = (b'<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/>'
              b'<entry><fullUrl value="urn:uuid:1a2b3c4d-0000-4000-8000-000000000001"/>'
              b'<resource><Patient><name><family value="Transacted-xml"/></name></Patient>'
              b'</resource><request><method value="POST"/><url value="Patient"/></request>'
              b"</entry>"
              b'<entry><resource><Observation><status value="final"/><code><text '
              b'value="t"/></code><subject><reference '
              b'value="urn:uuid:1a2b3c4d-0000-4000-8000-000000000001"/></subject>'
              b'<valueQuantity><value value="37.50"/></valueQuantity></Observation>'
              b'</resource><request><method value="POST"/><url value="Observation"/>'
              b"</request></entry></Bundle>")
    response = client.post("", content=bundle, headers=XML_BOTH)
    assert response.status_code == 200, response.text
    root = _xml(response)
    assert _value(root, "f:type/@value") == ["transaction-response"]
    assert _value(root, "f:entry/f:response/f:status/@value") == ["201 Created"] * 2
    patient, observation = _value(root, "f:entry/f:response/f:location/@value")
    obs = client.get("/" + observation.split("/_history")[0]).json()
    assert obs["subject"]["reference"] == patient.split("/_history")[0]
    assert str(json.loads(client.get("/" + observation.split("/_history")[0]).content,
                          parse_float=Decimal)["valueQuantity"]["value"]) == "37.50"


def test_batch_in_xml_answers_each_entry(client: httpx.Client) -> None:
    pid = _create(client)
    bundle = (b'<Bundle xmlns="http://hl7.org/fhir"><type value="batch"/>'
              b'<entry><request><method value="GET"/><url value="Patient/'
              + pid.encode() + b'"/></request></entry>'
              b'<entry><request><method value="GET"/><url value="Patient/nope-xml"/>'
              b"</request></entry></Bundle>")
    response = client.post("", content=bundle, headers=XML_BOTH)
    assert response.status_code == 200
    root = _xml(response)
    assert _value(root, "f:entry/f:response/f:status/@value") == ["200 OK", "404 Not Found"]
    assert _value(root, "f:entry/f:resource/f:Patient/f:id/@value") == [pid]
    assert _value(root, "f:entry/f:response/f:outcome/f:OperationOutcome/f:issue/f:code"
                        "/@value") == ["not-found"]


def test_capability_statement_in_xml_lists_xml(client: httpx.Client) -> None:
    response = client.get("/metadata", params={"_format": "xml"})
    assert response.status_code == 200
    formats = _value(_xml(response), "f:format/@value")
    assert {"application/fhir+xml", "application/fhir+json"} <= set(formats)
    assert client.get("/metadata").json()["format"] == formats


def test_operation_answers_and_parameters_bodies_in_xml(client: httpx.Client) -> None:
    pid = _create(client)
    everything = client.post(f"/Patient/{pid}/$everything", content=(
        b'<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="_count"/>'
        b'<valueInteger value="5"/></parameter></Parameters>'), headers=XML_BOTH)
    assert everything.status_code == 200, everything.text
    root = _xml(everything)
    assert _value(root, "f:type/@value") == ["searchset"]
    assert pid in _value(root, "f:entry/f:resource/f:Patient/f:id/@value")


def test_binary_resource_in_xml(client: httpx.Client) -> None:
    body = (b'<Binary xmlns="http://hl7.org/fhir"><contentType value="text/plain"/>'
            b'<data value="aGVsbG8="/></Binary>')
    created = client.post("/Binary", content=body, headers=XML_BODY)
    assert created.status_code == 201, created.text
    bid = created.headers["location"].split("/Binary/")[1].split("/")[0]
    raw = client.get(f"/Binary/{bid}")
    assert (raw.content, raw.headers["content-type"]) == (b"hello", "text/plain")
    resource = client.get(f"/Binary/{bid}", headers={"Accept": FHIR_XML})
    assert resource.status_code == 200
    assert _value(_xml(resource), "f:contentType/@value") == ["text/plain"]
    # application/xml is a Binary's raw content (a CDA document), not FHIR XML
    cda = b'<ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    upload = client.post("/Binary", content=cda, headers={"Content-Type": "application/xml"})
    assert upload.status_code == 201, upload.text
    cid = upload.headers["location"].split("/Binary/")[1].split("/")[0]
    back = client.get(f"/Binary/{cid}", headers={"Accept": "application/xml"})
    assert (back.content, back.headers["content-type"]) == (cda, "application/xml")
