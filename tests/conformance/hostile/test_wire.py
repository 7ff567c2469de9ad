"""Hostile requests on the wire, sent as raw bytes: dot-segment ids, URLs past the
parser's limit (414), heads past MAX_HEADER_BYTES (431), unknown methods, bad
Content-Length, Host headers outside ALLOWED_HOSTS; and bad Accept / Content-Type.
Each answer is an OperationOutcome; nothing is stored."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conformance.hostile.conftest import (
    HEADERS,
    Case,
    Raw,
    assert_refused,
    check,
    params,
)

_PATIENT = b'{"resourceType":"Patient"}'


def _request(method: str, target: str, host: str, body: bytes = b"",
             headers: str = "") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}"
    if body and "content-length" not in headers.lower():
        head += f"Content-Type: application/fhir+json\r\nContent-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


#: (name, function of the Host making the request bytes, status, issue code)
RAW: list[tuple[str, Callable[[str], bytes], int, str]] = [
    ("put-dot-id", lambda h: _request("PUT", "/fhir/Patient/.", h,
                                      b'{"resourceType":"Patient","id":"."}'), 400, "invalid"),
    ("put-dot-dot-id", lambda h: _request("PUT", "/fhir/Patient/..", h,
                                          b'{"resourceType":"Patient","id":".."}'), 400,
     "invalid"),
    ("put-dot-dot-escaped", lambda h: _request("PUT", "/fhir/Patient/%2E%2E", h,
                                               b'{"resourceType":"Patient","id":".."}'), 400,
     "invalid"),
    ("put-dot-id-in-history", lambda h: _request("PUT", "/fhir/Patient/./_history/1", h,
                                                 _PATIENT), 405, "not-supported"),
    ("url-70k", lambda h: _request("GET", "/fhir/Patient?name=" + "a" * 70_000, h), 414,
     "too-long"),
    ("url-70k-post", lambda h: _request("POST", "/fhir/Patient?x=" + "a" * 70_000, h,
                                        _PATIENT), 414, "too-long"),
    ("header-70k", lambda h: _request("GET", "/fhir/metadata", h,
                                      headers=f"X-Big: {'a' * 70_000}\r\n"), 431, "too-long"),
    ("headers-many", lambda h: _request("GET", "/fhir/metadata", h, headers="".join(
        f"X-H{i}: {'b' * 100}\r\n" for i in range(700))), 431, "too-long"),
    ("cookie-70k", lambda h: _request("GET", "/fhir/Patient", h,
                                      headers=f"Cookie: a={'c' * 70_000}\r\n"), 431,
     "too-long"),
    ("method-unknown", lambda h: _request("BREW", "/fhir/Patient", h), 400, "structure"),
    ("method-lowercase", lambda h: _request("get", "/fhir/Patient", h), 400, "structure"),
    ("method-garbage", lambda h: _request("G\x01T", "/fhir/Patient", h), 400, "structure"),
    ("request-line-nul", lambda h: _request("GET", "/fhir/Pat\x00ient", h), 400, "structure"),
    ("content-length-text", lambda h: _request("POST", "/fhir/Patient", h, _PATIENT,
                                               "Content-Type: application/fhir+json\r\n"
                                               "Content-Length: abc\r\n"), 400, "structure"),
    ("content-length-negative", lambda h: _request("POST", "/fhir/Patient", h, _PATIENT,
                                                   "Content-Type: application/fhir+json\r\n"
                                                   "Content-Length: -1\r\n"), 400,
     "structure"),
    ("content-length-twice", lambda h: _request("POST", "/fhir/Patient", h, _PATIENT,
                                                "Content-Type: application/fhir+json\r\n"
                                                "Content-Length: 26\r\n"
                                                "Content-Length: 3\r\n"), 400, "structure"),
    ("content-length-and-chunked", lambda h: _request(
        "POST", "/fhir/Patient", h, b"1a\r\n" + _PATIENT + b"\r\n0\r\n\r\n",
        "Content-Type: application/fhir+json\r\nContent-Length: 26\r\n"
        "Transfer-Encoding: chunked\r\n"), 400, "structure"),
    ("content-length-huge", lambda h: _request("POST", "/fhir/Patient", h, _PATIENT,
                                               "Content-Type: application/fhir+json\r\n"
                                               "Content-Length: 99999999999999999999999\r\n"),
     400, "structure"),
    ("content-length-over-limit", lambda h: _request("POST", "/fhir/Patient", h, _PATIENT,
                                                     "Content-Type: application/fhir+json\r\n"
                                                     f"Content-Length: {17 * 2 ** 20}\r\n"),
     413, "too-long"),
    ("chunked-garbage", lambda h: _request("POST", "/fhir/Patient", h, b"zz\r\nxx\r\n",
                                           "Content-Type: application/fhir+json\r\n"
                                           "Transfer-Encoding: chunked\r\n"), 400,
     "structure"),
    ("header-nul", lambda h: _request("GET", "/fhir/metadata", h,
                                      headers="X-A: a\x00b\r\n"), 400, "structure"),
    ("host-evil", lambda h: _request("GET", "/fhir/Patient", "evil.example"), 400, "invalid"),
    ("host-evil-suffix", lambda h: _request("GET", "/fhir/Patient", "127.0.0.1.evil.example"),
     400, "invalid"),
    ("host-evil-on-create", lambda h: _request("POST", "/fhir/Patient", "evil.example",
                                               _PATIENT), 400, "invalid"),
    ("host-evil-on-metadata", lambda h: _request("GET", "/fhir/metadata", "evil.example:80"),
     400, "invalid"),
    ("host-evil-on-bundle", lambda h: _request(
        "POST", "/fhir", "evil.example",
        b'{"resourceType":"Bundle","type":"batch","entry":[]}'), 400, "invalid"),
]


@pytest.mark.parametrize(("name", "make", "status", "code"),
                         [pytest.param(*r, id=r[0]) for r in RAW])
def test_hostile_wire_request_is_refused(raw: Raw, host: str, stored: Callable[[], int],
                                         name: str, make: Callable[[str], bytes], status: int,
                                         code: str) -> None:
    before = stored()
    response = raw(make(host))
    assert_refused(response.status, response.headers, response.body, status, code)
    assert stored() == before


@pytest.mark.parametrize("host_header", ["localhost", "LOCALHOST", "127.0.0.1"])
def test_allowed_hosts_are_answered(raw: Raw, host: str, host_header: str) -> None:
    port = host.rsplit(":", 1)[1]
    response = raw(_request("GET", "/fhir/metadata", f"{host_header}:{port}"))
    assert response.status == 200
    assert f"//{host_header.lower()}:{port}/fhir" in response.body.decode().lower()


CASES: list[Case] = [
    Case("accept-turtle", "GET", "/metadata", 406, "not-supported",
         headers={"Accept": "text/turtle"}),
    Case("accept-stu3", "GET", "/Patient", 406, "not-supported",
         headers={"Accept": "application/fhir+json; fhirVersion=3.0"}),
    Case("format-turtle-media-type", "GET", "/Patient?_format=application/fhir%2Bturtle",
         406, "not-supported"),
    Case("accept-xml-of-another-version", "GET", "/Patient", 406, "not-supported",
         headers={"Accept": "application/fhir+xml; fhirVersion=3.0"}),
    Case("format-turtle", "GET", "/metadata?_format=ttl", 406, "not-supported"),
    Case("accept-turtle-on-create", "POST", "/Patient", 406, "not-supported", _PATIENT,
         {"Accept": "application/fhir+turtle"}),
    Case("content-type-text", "POST", "/Patient", 415, "not-supported", _PATIENT,
         {"Content-Type": "text/plain"}),
    Case("content-type-turtle", "POST", "/Patient", 415, "not-supported", _PATIENT,
         {"Content-Type": "text/turtle"}),
    Case("xml-without-namespace", "POST", "/Patient", 400, "invalid", b"<Patient/>",
         {"Content-Type": "application/fhir+xml"}),
    Case("xml-json-body", "POST", "/Patient", 400, "invalid", _PATIENT,
         {"Content-Type": "application/fhir+xml"}),
    Case("xml-external-entity", "POST", "/Patient", 400, "security",
         b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
         b'<Patient xmlns="http://hl7.org/fhir"><name><text value="&x;"/></name></Patient>',
         {"Content-Type": "application/fhir+xml"}),
    Case("xml-billion-laughs", "POST", "/Patient", 400, "security",
         b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
         b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
         b'<Patient xmlns="http://hl7.org/fhir"><name><text value="&c;"/></name></Patient>',
         {"Content-Type": "application/xml"}),
    Case("xml-dtd-on-bundle", "POST", "", 400, "security",
         b'<!DOCTYPE Bundle SYSTEM "http://evil.example/x.dtd"><Bundle '
         b'xmlns="http://hl7.org/fhir"><type value="batch"/></Bundle>',
         {"Content-Type": "application/fhir+xml"}),
    Case("xml-too-deep", "POST", "/Patient", 400, "structure",
         b'<Patient xmlns="http://hl7.org/fhir">' + b'<extension url="u">' * 70
         + b"</extension>" * 70 + b"</Patient>", {"Content-Type": "application/fhir+xml"}),
    Case("xml-unknown-element", "POST", "/Patient", 422, "structure",
         b'<Patient xmlns="http://hl7.org/fhir"><banana value="1"/></Patient>',
         {"Content-Type": "application/fhir+xml"}),
    Case("xml-latin1", "POST", "/Patient", 415, "not-supported",
         b'<Patient xmlns="http://hl7.org/fhir"/>',
         {"Content-Type": "application/fhir+xml; charset=iso-8859-1"}),
    Case("content-type-form", "POST", "/Patient", 415, "not-supported", _PATIENT,
         {"Content-Type": "application/x-www-form-urlencoded"}),
    Case("charset-latin1", "POST", "/Patient", 415, "not-supported", _PATIENT,
         {"Content-Type": "application/fhir+json; charset=latin-1"}),
    Case("charset-utf16", "POST", "/Patient", 415, "not-supported",
         '{"resourceType":"Patient"}'.encode("utf-16"),
         {"Content-Type": "application/fhir+json; charset=utf-16"}),
    Case("content-type-multipart", "PUT", "/Patient/hostile-w", 415, "not-supported",
         _PATIENT, {"Content-Type": "multipart/form-data; boundary=x"}),
    Case("content-type-on-bundle", "POST", "", 415, "not-supported",
         b'{"resourceType":"Bundle","type":"batch"}', {"Content-Type": "text/plain"}),
    Case("body-over-max-body-bytes", "POST", "/Patient", 413, "too-long",
         b'{"resourceType":"Patient","name":[{"text":"' + b"x" * (17 * 2 ** 20) + b'"}]}'),
    Case("xml-body-over-max-body-bytes", "POST", "/Patient", 413, "too-long",
         b'<Patient xmlns="http://hl7.org/fhir"><name><text value="' + b"x" * (17 * 2 ** 20)
         + b'"/></name></Patient>', {"Content-Type": "application/fhir+xml"}),
    Case("xml-resource-over-max-resource-bytes", "POST", "/Patient", 413, "too-long",
         b'<Patient xmlns="http://hl7.org/fhir"><name><text value="' + b"x" * (9 * 2 ** 20)
         + b'"/></name></Patient>', {"Content-Type": "application/fhir+xml"}),
    Case("resource-over-max-resource-bytes", "POST", "/Patient", 413, "too-long",
         b'{"resourceType":"Patient","name":[{"text":"' + b"x" * (9 * 2 ** 20) + b'"}]}'),
    Case("update-over-max-resource-bytes", "PUT", "/Patient/hostile-w", 413, "too-long",
         b'{"resourceType":"Patient","id":"hostile-w","name":[{"text":"'
         + b"x" * (9 * 2 ** 20) + b'"}]}'),
]


@pytest.mark.parametrize("case", params(CASES))
def test_hostile_media_and_size_is_refused(case: Case, fhir: httpx.Client,
                                           stored: Callable[[], int]) -> None:
    check(case, fhir, stored)


@pytest.mark.parametrize("prefer", ["return=banana", "handling=banana", "respond-async=x",
                                    ";;;", "return=" + "r" * 4000])
def test_unknown_prefer_is_ignored(fhir: httpx.Client, prefer: str) -> None:
    """RFC 7240: a preference the server does not understand is ignored, not refused."""
    response = fhir.post("/Patient", content=_PATIENT, headers={**HEADERS, "Prefer": prefer})
    assert response.status_code == 201, response.text[:300]
