"""Inputs that reached a 500 (issue 11): each is a 4xx OperationOutcome now, and nothing
it carried is stored. Bodies go over HTTP and, through the ``client`` fixture, as a
Bundle entry too; what only one of those can carry is ``http_only``."""

from __future__ import annotations

import base64
import http.client
import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import psycopg
import pytest

FHIR_JSON = {"Content-Type": "application/fhir+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
OBSERVATION = (b'{"resourceType":"Observation","status":"final","code":{"text":"hostile"},'
               b'"valueQuantity":{"value":%s,"unit":"mg"}}')


@pytest.fixture
def stored(database_url: str) -> Callable[[], int]:
    """Counts every stored version (AuditEvents, which record refusals too, aside)."""

    def count() -> int:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM resource_history"
                               " WHERE resource_type <> 'AuditEvent'").fetchone()
        assert row is not None
        return int(row[0])

    return count


def _outcome(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert (outcome["issue"][0]["severity"], outcome["issue"][0]["code"]) == ("error", code)
    return outcome


def _patient(client: httpx.Client, name: str = "Hostile") -> str:
    pid = f"h-{uuid.uuid4().hex[:12]}"
    body = orjson.dumps({"resourceType": "Patient", "id": pid, "name": [{"family": name}]})
    assert client.put(f"/Patient/{pid}", content=body, headers=FHIR_JSON).status_code == 201
    return pid


# -- bodies PostgreSQL cannot store, or that are not JSON ---------------------------------

_BODIES = {
    # NUL: jsonb cannot hold it, in any element type
    "nul-string": (b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}', 400,
                   "invalid"),
    "nul-uri": (b'{"resourceType":"Patient","implicitRules":"http://x/\\u0000"}', 400,
                "invalid"),
    "nul-reference": (b'{"resourceType":"Patient","managingOrganization":'
                      b'{"reference":"Organization/\\u0000"}}', 400, "invalid"),
    "nul-quantity-unit": (b'{"resourceType":"Observation","status":"final","code":'
                          b'{"text":"x"},"valueQuantity":{"value":1,"unit":"m\\u0000g"}}',
                          400, "invalid"),
    "nul-code": (b'{"resourceType":"Patient","gender":"\\u0000"}', 400, "invalid"),
    "nul-key": (b'{"resourceType":"Patient","a\\u0000":1}', 400, "invalid"),
    "nul-in-extension": (b'{"resourceType":"Patient","extension":[{"url":"x",'
                         b'"valueString":"\\u0000"}]}', 400, "invalid"),
    # lone UTF-16 surrogates are no Unicode text
    "lone-high-surrogate": (b'{"resourceType":"Patient","name":[{"family":"\\ud800"}]}',
                            400, "invalid"),
    "lone-low-surrogate": (b'{"resourceType":"Patient","name":[{"family":"x\\udc00y"}]}',
                           400, "invalid"),
    "reversed-surrogates": (b'{"resourceType":"Patient","name":[{"family":"\\ude00\\ud83d"'
                            b'}]}', 400, "invalid"),
    "surrogate-key": (b'{"resourceType":"Patient","\\ud800":1}', 400, "invalid"),
    # decimals that overflow, underflow or exceed what numeric keeps
    "decimal-1e999999": (OBSERVATION % b"1e999999", 400, "invalid"),
    "decimal-1e-999999": (OBSERVATION % b"1e-999999", 400, "invalid"),
    "decimal-1e400": (OBSERVATION % b"1e400", 400, "invalid"),
    "decimal-1e-400": (OBSERVATION % b"1e-400", 400, "invalid"),
    "decimal-1e308": (OBSERVATION % b"1e308", 400, "invalid"),
    "decimal-subnormal": (OBSERVATION % b"4.9e-324", 400, "invalid"),
    "decimal-negative-huge": (OBSERVATION % b"-1E+5000", 400, "invalid"),
    "decimal-zero-tiny-exponent": (OBSERVATION % b"0e-99999", 400, "invalid"),
    "decimal-2000-digits": (OBSERVATION % (b"1" * 2000), 400, "invalid"),
    "decimal-5000-zeros": (OBSERVATION % (b"0." + b"0" * 5000 + b"1"), 400, "invalid"),
    "decimal-many-digits": (OBSERVATION % (b"1." + b"1" * 1200), 400, "invalid"),
    "risk-probability-1e-400": (b'{"resourceType":"RiskAssessment","status":"final",'
                                b'"subject":{"reference":"Patient/x"},'
                                b'"prediction":[{"probabilityDecimal":1e-400}]}', 400,
                                "invalid"),
    "extension-decimal-1e-999": (b'{"resourceType":"Patient","extension":[{"url":"x",'
                                 b'"valueDecimal":1e-999}]}', 400, "invalid"),
    # integers: FHIR's are 32-bit; beyond 64 bits no JSON library here writes them back
    "integer-beyond-64-bits": (b'{"resourceType":"Observation","status":"final","code":'
                               b'{"text":"x"},"valueInteger":123456789012345678901234567890}',
                               422, "value"),
    "integer-beyond-32-bits": (b'{"resourceType":"Observation","status":"final","code":'
                               b'{"text":"x"},"valueInteger":2147483648}', 422, "value"),
    "integer-just-past-int64": (b'{"resourceType":"Patient","multipleBirthInteger":'
                                b'9223372036854775808}', 422, "value"),
    "integer-5000-digits": (b'{"resourceType":"Patient","multipleBirthInteger":'
                            + b"9" * 5000 + b"}", 400, "invalid"),
    # not JSON numbers at all (Python's json reads them)
    "nan": (b'{"resourceType":"Patient","multipleBirthInteger":NaN}', 400, "invalid"),
    "infinity": (b'{"resourceType":"Patient","multipleBirthInteger":Infinity}', 400,
                 "invalid"),
    "minus-infinity": (OBSERVATION % b"-Infinity", 400, "invalid"),
}


_TYPE = re.compile(rb'\{"resourceType":"(\w+)"')


@pytest.mark.parametrize("name", sorted(_BODIES))
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_unstorable_body_is_refused_and_nothing_stored(
        client: httpx.Client, stored: Callable[[], int], name: str, method: str) -> None:
    body, status, code = _BODIES[name]
    found = _TYPE.match(body)
    assert found is not None
    resource_type = found[1].decode()
    before = stored()
    if method == "POST":
        response = client.post(f"/{resource_type}", content=body, headers=FHIR_JSON)
    else:
        rid = f"h-{uuid.uuid4().hex[:12]}"
        body = body.replace(b'{"resourceType":"%s"' % resource_type.encode(),
                            b'{"resourceType":"%s","id":"%s"' % (resource_type.encode(),
                                                                 rid.encode()), 1)
        response = client.put(f"/{resource_type}/{rid}", content=body, headers=FHIR_JSON)
        assert client.get(f"/{resource_type}/{rid}").status_code == 404
    _outcome(response, status, code)
    assert stored() == before


_NOT_UTF8 = {
    "invalid-byte": b'{"resourceType":"Patient","name":[{"family":"\xff"}]}',
    "overlong-slash": b'{"resourceType":"Patient","name":[{"family":"\xc0\xaf"}]}',
    "encoded-surrogate": b'{"resourceType":"Patient","name":[{"family":"\xed\xa0\x80"}]}',
    "truncated-sequence": b'{"resourceType":"Patient","name":[{"family":"\xe2\x82"}]}',
    "double-bom": b'\xef\xbb\xbf\xef\xbb\xbf{"resourceType":"Patient"}',
    "utf-16-bom": b'\xff\xfe{\x00}\x00',
}


@pytest.mark.http_only
@pytest.mark.parametrize("name", sorted(_NOT_UTF8))
@pytest.mark.parametrize("in_bundle", [False, True])
def test_body_not_utf8_is_400(client: httpx.Client, stored: Callable[[], int],
                              name: str, in_bundle: bool) -> None:
    before = stored()
    body = _NOT_UTF8[name]
    if in_bundle:  # the same bytes inside a Bundle, or before it
        start = body.index(b"{")
        body = body[:start] + _bundle("batch", b'{"request":{"method":"POST","url":'
                                      b'"Patient"},"resource":' + body[start:] + b"}")
    response = client.post("/" if in_bundle else "/Patient", content=body,
                           headers=FHIR_JSON)
    _outcome(response, 400, "invalid")
    assert stored() == before


@pytest.mark.http_only
def test_one_bom_is_accepted(client: httpx.Client) -> None:
    response = client.post("/Patient", content=b'\xef\xbb\xbf{"resourceType":"Patient"}',
                           headers=FHIR_JSON)
    assert response.status_code == 201


@pytest.mark.parametrize("value", ["1e300", "-1e-300", "0.000001", "1" * 250, "0e5",
                                   "9.99e307", "1." + "1" * 998])
def test_numbers_within_range_are_stored(client: httpx.Client, value: str) -> None:
    response = client.post("/Observation", content=OBSERVATION % value.encode(),
                           headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    read = client.get(response.headers["location"])
    stored_value = json.loads(read.content, parse_float=Decimal)["valueQuantity"]["value"]
    assert Decimal(stored_value) == Decimal(value)


# -- Bundles: what a batch or transaction entry carries ------------------------------------

def _bundle(kind: str, *entries: bytes) -> bytes:
    return (b'{"resourceType":"Bundle","type":"' + kind.encode() + b'","entry":['
            + b",".join(entries) + b"]}")


def _post_entry(resource: bytes) -> bytes:
    return b'{"request":{"method":"POST","url":"Observation"},"resource":' + resource + b"}"


_BIG_INTEGER = (b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
                b'"valueInteger":123456789012345678901234567890}')


@pytest.mark.http_only
@pytest.mark.parametrize(("kind", "status"), [("batch", 200), ("transaction", 422)])
def test_integer_beyond_64_bits_in_a_bundle(client: httpx.Client, stored: Callable[[], int],
                                            kind: str, status: int) -> None:
    before = stored()
    response = client.post("/", content=_bundle(kind, _post_entry(_BIG_INTEGER)),
                           headers=FHIR_JSON)
    assert response.status_code == status, response.text
    if kind == "batch":
        entry = response.json()["entry"][0]["response"]
        assert entry["status"].startswith("422")
        assert entry["outcome"]["issue"][0]["code"] == "value"
    else:
        _outcome(response, 422, "value")
    assert stored() == before


@pytest.mark.http_only
@pytest.mark.parametrize("resource", [
    b'{"resourceType":"Patient","gender":"\\ud800"}',
    b'{"resourceType":"Patient","name":[{"given":["\\udfff"]}]}',
    OBSERVATION % b"1e999999",
    OBSERVATION % b"1e-999999",
    OBSERVATION % b"NaN",
], ids=["surrogate", "surrogate-in-list", "1e999999", "1e-999999", "nan"])
@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_unstorable_entry_refuses_the_bundle(client: httpx.Client, stored: Callable[[], int],
                                             resource: bytes, kind: str) -> None:
    before = stored()
    good = _post_entry(OBSERVATION % b"1")
    response = client.post("/", content=_bundle(kind, good, _post_entry(resource)),
                           headers=FHIR_JSON)
    _outcome(response, 400, "invalid")
    assert stored() == before


def _binary_patch(pid: str, data: Any) -> bytes:
    binary = {"resourceType": "Binary", "contentType": "application/json-patch+json",
              "data": data}
    return orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "PATCH", "url": f"Patient/{pid}"}, "resource": binary}]})


@pytest.mark.http_only
@pytest.mark.parametrize("data", [
    base64.b64encode(b'[{"op":"add","path":"/gender","value":"a\\u0000"}]').decode(),
    base64.b64encode(b'[{"op":"add","path":"/birthDate","value":"\\ud800"}]').decode(),
    base64.b64encode(b'[{"op":"add","path":"/multipleBirthInteger","value":1e-999}]'
                     ).decode(),
    base64.b64encode(b'[{"op":"add","path":"/gender","value":"male"}').decode(),
    5,
], ids=["nul", "surrogate", "tiny-number", "not-json", "data-not-a-string"])
def test_json_patch_entry_is_checked_like_a_body(client: httpx.Client, data: Any) -> None:
    pid = _patient(client)
    response = client.post("/", content=_binary_patch(pid, data), headers=FHIR_JSON)
    assert response.status_code == 200
    entry = response.json()["entry"][0]["response"]
    assert entry["status"].startswith("400"), entry
    assert entry["outcome"]["issue"][0]["code"] == "invalid"
    assert client.get(f"/Patient/{pid}").json()["meta"]["versionId"] == "1"


# -- forged paging cursors ----------------------------------------------------------------

def _forge(*keys: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"k": list(keys), "b": False})
                                    ).decode().rstrip("=")


@pytest.mark.parametrize(("query", "value"), [
    ("Patient?_sort=birthdate", "\uff12\uff10\uff12\uff10-01-01 00:00:00+00"),
    ("Patient?_sort=birthdate", "\u0662\u0660\u0662\u0660-01-01 00:00:00+00"),
    ("Patient?_sort=birthdate", "2020-01-01 00:00:00+99"),
    ("Patient?_sort=-birthdate", "0000-01-01 00:00:00Z"),
    ("Observation?_sort=value-quantity", "1_0"),
    ("Observation?_sort=value-quantity", "\uff11\uff12"),
    ("Observation?_sort=value-quantity", " 1"),
    ("Observation?_sort=value-quantity", "sNaN"),
    ("Observation?_sort=value-quantity", "1e99999"),
    ("RiskAssessment?_sort=probability", "\u0661"),
    ("RiskAssessment?_sort=probability", "--1"),
])
def test_forged_sorted_cursor_is_400_without_sql(client: httpx.Client, query: str,
                                                 value: str) -> None:
    response = client.get(f"{query}&_cursor={_forge(value, 1)}")
    outcome = _outcome(response, 400, "invalid")
    text = outcome["issue"][0]["diagnostics"]
    assert "_cursor" in text and "syntax" not in text and "numeric" not in text


@pytest.mark.parametrize(("query", "value"), [
    ("Patient?_sort=birthdate", "2020-01-01 00:00:00+00"),
    ("Patient?_sort=birthdate", "infinity"),
    ("Observation?_sort=value-quantity", "1.5"),
    ("Observation?_sort=value-quantity", "-Infinity"),
    ("RiskAssessment?_sort=probability", "0.25"),
])
def test_well_formed_cursor_is_taken(client: httpx.Client, query: str, value: str) -> None:
    response = client.get(f"{query}&_cursor={_forge(value, 1)}")
    assert response.status_code == 200, response.text


def test_sorted_cursor_the_server_made_still_pages(client: httpx.Client) -> None:
    for value in ("1.5", "2.25", "3"):
        assert client.post("/Observation", content=OBSERVATION % value.encode(),
                           headers=FHIR_JSON).status_code == 201
    first = client.get("/Observation", params={"_sort": "value-quantity", "_count": "1"})
    assert first.status_code == 200
    following = [link["url"] for link in first.json()["link"] if link["relation"] == "next"]
    assert following and client.get(following[0]).status_code == 200


# -- ids and versions in the path ---------------------------------------------------------

@pytest.mark.parametrize("suffix", [
    "_history/1\u00b3", "_history/\u0661", "_history/\uff11", "_history/0", "_history/-1",
    "_history/99999999999999999999", "_history/1e3", "_history/%00",
])
def test_vread_of_a_version_that_is_no_number_is_404(client: httpx.Client,
                                                     suffix: str) -> None:
    pid = _patient(client)
    _outcome(client.get(f"/Patient/{pid}/{suffix}"), 404, "not-found")


@pytest.mark.parametrize("rid", ["\u0661", "a\u00b3", "%00", "x" * 65])
def test_read_of_an_id_that_is_not_one_is_404(client: httpx.Client, rid: str) -> None:
    _outcome(client.get(f"/Patient/{rid}"), 404, "not-found")


def _raw(server: str, method: str, target: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request with its target exactly as given (httpx removes dot segments)."""
    url = urlsplit(server)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        conn.request(method, target, body=body, headers={**FHIR_JSON, **(headers or {})})
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


@pytest.mark.http_only
@pytest.mark.parametrize("segment", [".", "..", "%2e", "%2E%2e"])
def test_dot_segment_ids_are_refused_on_update(server: str, stored: Callable[[], int],
                                               segment: str) -> None:
    before = stored()
    rid = segment.replace("%2e", ".").replace("%2E", ".")
    body = orjson.dumps({"resourceType": "Patient", "id": rid})
    status, _, answer = _raw(server, "PUT", f"/fhir/Patient/{segment}", body)
    assert status == 400, answer
    assert orjson.loads(answer)["issue"][0]["code"] == "invalid"
    assert _raw(server, "GET", f"/fhir/Patient/{segment}")[0] == 404
    assert stored() == before


@pytest.mark.http_only
@pytest.mark.parametrize(("kind", "entry"), [
    ("batch", {"request": {"method": "PUT", "url": "Patient/.."},
               "resource": {"resourceType": "Patient", "id": ".."}}),
    ("transaction", {"request": {"method": "PUT", "url": "Patient/."},
                     "resource": {"resourceType": "Patient", "id": "."}}),
    ("transaction", {"request": {"method": "PUT", "url": "Patient?identifier=none|dots"},
                     "resource": {"resourceType": "Patient", "id": ".."}}),
])
def test_dot_segment_ids_are_refused_in_bundles(client: httpx.Client,
                                                stored: Callable[[], int], kind: str,
                                                entry: dict[str, Any]) -> None:
    before = stored()
    bundle = {"resourceType": "Bundle", "type": kind, "entry": [entry]}
    response = client.post("/", content=orjson.dumps(bundle), headers=FHIR_JSON)
    if kind == "batch":
        assert response.status_code == 200
        answer = response.json()["entry"][0]["response"]
        assert answer["status"].startswith("400")
        assert answer["outcome"]["issue"][0]["code"] == "invalid"
    else:
        _outcome(response, 400, "invalid")
    assert stored() == before


def test_conditional_update_refuses_a_dot_id_to_create(client: httpx.Client,
                                                       stored: Callable[[], int]) -> None:
    before = stored()
    body = orjson.dumps({"resourceType": "Patient", "id": "."})
    response = client.put("/Patient", params={"identifier": "none|dot"}, content=body,
                          headers=FHIR_JSON)
    _outcome(response, 400, "invalid")
    assert stored() == before


# -- 405 names what is allowed ------------------------------------------------------------

@pytest.mark.http_only
@pytest.mark.parametrize(("method", "path", "allow"), [
    ("DELETE", "/fhir/metadata", "GET, HEAD"),
    ("PUT", "/fhir", "GET, HEAD, POST"),
    ("TRACE", "/fhir/Patient", "DELETE, GET, HEAD, PATCH, POST, PUT"),
    ("POST", "/fhir/Patient/x", "DELETE, GET, HEAD, PATCH, PUT"),
    ("DELETE", "/fhir/Patient/x/_history", "GET, HEAD"),
    ("PUT", "/fhir/Patient/x/_history/1", "GET, HEAD"),
    ("PUT", "/fhir/AuditEvent/x", "GET, HEAD"),
    ("DELETE", "/api/v1/health", "GET, HEAD"),
    ("POST", "/api/v1/ready", "GET, HEAD"),
    ("POST", "/metrics", "GET, HEAD"),
])
def test_405_carries_allow(server: str, method: str, path: str, allow: str) -> None:
    body = b'{"resourceType":"AuditEvent","id":"x"}' if method in ("PUT", "POST") else None
    status, headers, answer = _raw(server, method, path, body)
    assert status == 405, answer
    assert headers.get("allow") == allow
    assert orjson.loads(answer)["issue"][0]["code"] == "not-supported"


# -- If-Match: * ----------------------------------------------------------------------------

def test_if_match_star_updates_an_existing_resource(client: httpx.Client) -> None:
    pid = _patient(client)
    body = orjson.dumps({"resourceType": "Patient", "id": pid, "active": True})
    response = client.put(f"/Patient/{pid}", content=body,
                          headers={**FHIR_JSON, "If-Match": "*"})
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'


def test_if_match_star_never_creates(client: httpx.Client, stored: Callable[[], int]) -> None:
    pid = f"h-{uuid.uuid4().hex[:12]}"
    before = stored()
    body = orjson.dumps({"resourceType": "Patient", "id": pid})
    response = client.put(f"/Patient/{pid}", content=body,
                          headers={**FHIR_JSON, "If-Match": "*"})
    _outcome(response, 412, "conflict")
    assert client.get(f"/Patient/{pid}").status_code == 404
    assert stored() == before


def test_if_match_star_patches_an_existing_resource(client: httpx.Client) -> None:
    pid = _patient(client)
    patch = b'[{"op":"add","path":"/active","value":true}]'
    response = client.patch(f"/Patient/{pid}", content=patch,
                            headers={**JSON_PATCH, "If-Match": "*"})
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'


def test_if_match_star_patch_of_a_missing_resource_is_412(client: httpx.Client) -> None:
    patch = b'[{"op":"add","path":"/active","value":true}]'
    response = client.patch(f"/Patient/h-{uuid.uuid4().hex[:12]}", content=patch,
                            headers={**JSON_PATCH, "If-Match": "*"})
    _outcome(response, 412, "conflict")


def test_if_match_star_deletes_an_existing_resource(client: httpx.Client) -> None:
    pid = _patient(client)
    assert client.delete(f"/Patient/{pid}", headers={"If-Match": "*"}).status_code == 204
    assert client.get(f"/Patient/{pid}").status_code == 410


@pytest.mark.parametrize("gone", [False, True])
def test_if_match_star_delete_of_nothing_is_412(client: httpx.Client, gone: bool) -> None:
    pid = _patient(client) if gone else f"h-{uuid.uuid4().hex[:12]}"
    if gone:
        assert client.delete(f"/Patient/{pid}").status_code == 204
    _outcome(client.delete(f"/Patient/{pid}", headers={"If-Match": "*"}), 412, "conflict")


def test_if_match_star_after_a_delete_does_not_revive(client: httpx.Client) -> None:
    pid = _patient(client)
    assert client.delete(f"/Patient/{pid}").status_code == 204
    body = orjson.dumps({"resourceType": "Patient", "id": pid})
    response = client.put(f"/Patient/{pid}", content=body,
                          headers={**FHIR_JSON, "If-Match": "*"})
    _outcome(response, 412, "conflict")
    assert client.get(f"/Patient/{pid}").status_code == 410


def test_empty_json_patch_changes_nothing(client: httpx.Client) -> None:
    pid = _patient(client)
    response = client.patch(f"/Patient/{pid}", content=b"[]", headers=JSON_PATCH)
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"1"'
