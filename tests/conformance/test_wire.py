"""Content negotiation, formats, hostile bodies: every refusal a 4xx OperationOutcome."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable

import httpx
import orjson
import psycopg
import pytest

FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON}
PATIENT = b'{"resourceType":"Patient","name":[{"family":"Wire"}]}'


def _created(client: httpx.Client) -> str:
    response = client.post("/Patient", content=PATIENT, headers=HEADERS)
    assert response.status_code == 201
    return str(response.json()["id"])


@pytest.fixture
def stored(database_url: str) -> Callable[[], int]:
    """Counts every stored version: a refused request must not change it (its
    AuditEvent, which records the refusal, aside)."""

    def count() -> int:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM resource_history"
                               " WHERE resource_type <> 'AuditEvent'").fetchone()
        assert row is not None
        return int(row[0])

    return count


@pytest.mark.parametrize(("accept", "expected"), [
    (None, "application/fhir+json"),
    ("application/fhir+json", "application/fhir+json"),
    ("application/json", "application/json"),
    ("application/json+fhir", "application/fhir+json"),
    ("*/*", "application/fhir+json"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
     "application/fhir+json"),
    ("application/fhir+json; fhirVersion=4.0", "application/fhir+json"),
])
@pytest.mark.http_only
def test_accept(client: httpx.Client, accept: str | None, expected: str) -> None:
    pid = _created(client)
    headers = {"Accept": accept} if accept else {}
    response = client.get(f"/Patient/{pid}", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{expected}; charset=utf-8"


@pytest.mark.http_only
@pytest.mark.parametrize("accept", ["text/turtle", "application/fhir+turtle",
                                    "application/fhir+json; fhirVersion=3.0"])
def test_unsupported_accept_is_406(client: httpx.Client, accept: str) -> None:
    pid = _created(client)
    response = client.get(f"/Patient/{pid}", headers={"Accept": accept})
    assert response.status_code == 406
    assert response.headers["content-type"] == "application/fhir+json; charset=utf-8"
    assert response.json()["issue"][0]["code"] == "not-supported"


@pytest.mark.parametrize(("fmt", "status", "media"), [
    ("json", 200, "application/fhir+json"),
    ("application/json", 200, "application/json"),
    ("application/fhir json", 200, "application/fhir+json"),
    ("xml", 200, "application/fhir+xml"),
    ("text/xml", 200, "text/xml"),
    ("ttl", 406, "application/fhir+json"),
])
@pytest.mark.http_only
def test_format_parameter(client: httpx.Client, fmt: str, status: int, media: str) -> None:
    pid = _created(client)
    response = client.get(f"/Patient/{pid}", params={"_format": fmt},
                          headers={"Accept": "application/fhir+xml"})
    assert response.status_code == status
    assert response.headers["content-type"] == f"{media}; charset=utf-8"


@pytest.mark.http_only
def test_pretty(client: httpx.Client) -> None:
    pid = _created(client)
    pretty = client.get(f"/Patient/{pid}", params={"_pretty": "true"})
    assert pretty.status_code == 200
    assert pretty.text.startswith("{\n  ")
    plain = client.get(f"/Patient/{pid}")
    assert "\n" not in plain.text
    assert pretty.json() == plain.json()


def test_summary_and_elements_on_read(client: httpx.Client) -> None:
    body = {"resourceType": "Patient", "active": True, "gender": "male",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "name": [{"family": "Sub"}], "maritalStatus": {"text": "M"}}
    pid = client.post("/Patient", content=orjson.dumps(body), headers=HEADERS).json()["id"]
    summary = client.get(f"/Patient/{pid}", params={"_summary": "true"}).json()
    assert "maritalStatus" not in summary
    assert "text" not in summary
    assert summary["name"] == [{"family": "Sub"}]
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
            "code": "SUBSETTED"} in summary["meta"]["tag"]
    data = client.get(f"/Patient/{pid}", params={"_summary": "data"}).json()
    assert "text" not in data and data["maritalStatus"] == {"text": "M"}
    text = client.get(f"/Patient/{pid}", params={"_summary": "text"}).json()
    assert "text" in text and "name" not in text
    elements = client.get(f"/Patient/{pid}", params={"_elements": "gender"}).json()
    assert elements["gender"] == "male"
    assert "name" not in elements and "active" not in elements
    assert elements["id"] == pid
    assert client.get(f"/Patient/{pid}", params={"_summary": "bogus"}).status_code == 400


@pytest.mark.http_only
@pytest.mark.parametrize("content_type", [None, "text/plain", "text/turtle",
                                          "application/x-www-form-urlencoded",
                                          "application/fhir+json; charset=latin-1"])
def test_wrong_content_type_is_415(client: httpx.Client, content_type: str | None,
                                   stored: Callable[[], int]) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    before = stored()
    response = client.post("/Patient", content=PATIENT, headers=headers)
    assert response.status_code == 415
    assert response.json()["issue"][0]["code"] == "not-supported"
    assert stored() == before


@pytest.mark.parametrize(("body", "status"), [
    (b"", 400),
    (b"{", 400),
    (b"not json", 400),
    (b"[1, 2]", 400),
    (b'"a string"', 400),
    (b'{"resourceType":"Patient","name":[{"family":"\xff\xfe"}]}', 400),
    (b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}', 400),
    (b'{"resourceType":"Patient","gender":"\\ud800"}', 400),
    (b'{"resourceType":"Patient","birthDate":1e999}', 400),
    (b"[" * 10_000 + b"]" * 10_000, 400),
    (b'{"resourceType":"Patient","extension":' + b'[{"extension":' * 100 + b"[]"
     + b"}]" * 100 + b"}", 400),
    (b'{"name":[{"family":"NoType"}]}', 400),
    (b'{"resourceType":"Patient","gender":"robot"}', 422),
    (b'{"resourceType":"Patient","unknownElement":true}', 422),
    (b'{"resourceType":"Patient","birthDate":"2020-13-45"}', 422),
])
@pytest.mark.http_only
def test_hostile_bodies_are_4xx_and_nothing_stored(
        client: httpx.Client, root_client: httpx.Client, stored: Callable[[], int],
        body: bytes, status: int) -> None:
    before = stored()
    response = client.post("/Patient", content=body, headers=HEADERS)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    pid = f"hostile-{uuid.uuid4().hex[:8]}"
    response = client.put(f"/Patient/{pid}", content=body, headers=HEADERS)
    assert 400 <= response.status_code < 500
    assert client.get(f"/Patient/{pid}").status_code == 404
    assert stored() == before
    assert root_client.get("/api/v1/health").status_code == 200


@pytest.mark.http_only
def test_body_over_limit_is_413(client: httpx.Client, root_client: httpx.Client,
                                stored: Callable[[], int]) -> None:
    big = b'{"resourceType":"Patient","text":{"status":"generated","div":"<div>' + \
        b"x" * (20 * 1024 * 1024) + b'</div>"}}'
    before = stored()
    response = client.post("/Patient", content=big, headers=HEADERS)
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-long"
    assert stored() == before
    assert root_client.get("/api/v1/health").status_code == 200


def test_invalid_resource_names_each_problem(client: httpx.Client) -> None:
    body = {"resourceType": "Patient", "gender": "robot", "birthDate": "2020-02-30",
            "name": [{"family": 42}]}
    response = client.post("/Patient", content=orjson.dumps(body), headers=HEADERS)
    assert response.status_code == 422
    expressions = {e for issue in response.json()["issue"] for e in issue.get("expression", [])}
    assert {"Patient.gender", "Patient.birthDate", "Patient.name[0].family"} <= expressions


@pytest.mark.http_only
def test_one_date_header_never_before_last_modified(client: httpx.Client,
                                                    root_client: httpx.Client) -> None:
    import time
    from email.utils import parsedate_to_datetime

    # Spread over more than a second: a Date cached once a second (uvicorn's) lags
    # behind a Last-Modified written after the next second began.
    for _ in range(30):
        time.sleep(0.04)
        response = client.post("/Patient", content=PATIENT, headers=HEADERS)
        assert response.status_code == 201
        dates = response.headers.get_list("date")
        assert len(dates) == 1
        modified = parsedate_to_datetime(response.headers["last-modified"])
        assert modified <= parsedate_to_datetime(dates[0])
    for path in ("/api/v1/health", "/fhir/metadata", "/no/such/path"):
        assert len(root_client.get(path).headers.get_list("date")) == 1, path


@pytest.mark.http_only
def test_large_answers_are_gzipped_when_the_client_accepts_it(client: httpx.Client) -> None:
    tag = f"gz{uuid.uuid4().hex[:10]}"
    for n in range(30):
        body = {"resourceType": "Patient", "meta": {"tag": [{"system": "urn:gz", "code": tag}]},
                "name": [{"family": f"Gzip{n}", "given": ["Compressible"] * 5}]}
        assert client.post("/Patient", content=orjson.dumps(body),
                           headers=HEADERS).status_code == 201
    params = {"_tag": f"urn:gz|{tag}", "_count": "30"}
    zipped = client.get("/Patient", params=params, headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in zipped.headers["vary"].lower()
    assert len(zipped.json()["entry"]) == 30
    plain = client.get("/Patient", params=params, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.json()["entry"] == zipped.json()["entry"]
    one = zipped.json()["entry"][0]["resource"]["id"]
    small = client.get(f"/Patient/{one}", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under 4 KiB: sent as it is


def raw_exchange(server: str, request: bytes) -> tuple[bytes, bytes]:
    """Send bytes no HTTP client would, and read the answer's head and body."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.http_only
def test_over_long_url_is_414_operation_outcome(client: httpx.Client, server: str) -> None:
    fits = client.get("/Patient", params={"name": "a" * 60_000})
    assert fits.status_code == 200
    head, body = raw_exchange(server, b"GET /fhir/Patient?name=" + b"a" * 70_000
                              + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert b"content-type: application/fhir+json; charset=utf-8" in head
    issue = orjson.loads(body)["issue"][0]
    assert (issue["severity"], issue["code"]) == ("error", "too-long")
    assert "POST [base]/[type]/_search" in issue["diagnostics"]


@pytest.mark.http_only
def test_what_the_http_parser_refuses_is_an_operation_outcome(server: str) -> None:
    head, body = raw_exchange(server, b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"content-type: application/fhir+json; charset=utf-8" in head
    assert orjson.loads(body)["issue"][0]["code"] == "structure"
