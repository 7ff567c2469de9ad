"""Binary.securityContext with SMART scopes: a caller reads a Binary when its scope
reads the resource securityContext points to (or every Binary); it cannot point a
Binary at what it may not read, and every path to the data (searches, histories,
includes) applies the same rule."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.auth.conftest import FHIR_JSON, Smart, outcome_code, put, start_smart

PDF = "application/pdf"


@pytest.fixture(scope="module")
def smart(blob_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smart]:
    data_dir: Path = tmp_path_factory.mktemp("data")
    yield from start_smart(blob_database, DATA_DIR=str(data_dir),
                           ATTACHMENT_INLINE_MAX_BYTES="100")


@pytest.fixture(scope="module")
def records(smart: Smart) -> dict[str, str]:
    """Patients a and b; a's DocumentReference with a PDF moved to a Binary; a Binary
    whose securityContext is b; one without securityContext."""
    with smart.client(smart.token("system/*.*")) as admin:
        for id in ("a", "b"):
            put(admin, {"resourceType": "Patient", "id": id})
        pdf = b"%PDF-1.7\n" + os.urandom(2000)
        document = admin.post("DocumentReference", json={
            "resourceType": "DocumentReference", "status": "current",
            "subject": {"reference": "Patient/a"},
            "content": [{"attachment": {"contentType": PDF,
                                        "data": base64.b64encode(pdf).decode()}}]},
            headers={"Content-Type": FHIR_JSON, "Prefer": "return=representation"})
        assert document.status_code == 201, document.text
        of_a = document.json()["content"][0]["attachment"]["url"].split("/")[1]
        of_b = raw(admin, b"b's scan", **{"X-Security-Context": "Patient/b"})
        loose = raw(admin, b"no context")
    return {"a": of_a, "b": of_b, "loose": loose, "pdf": base64.b64encode(pdf).decode()}


def raw(client: httpx.Client, data: bytes, **headers: str) -> str:
    answer = client.post("Binary", content=data,
                         headers={"Content-Type": "image/png", **headers})
    assert answer.status_code == 201, answer.text
    return answer.headers["location"].split("/Binary/")[1].split("/")[0]


def test_patient_scope_reads_its_documents_content(smart: Smart,
                                                   records: dict[str, str]) -> None:
    with smart.client(smart.token("patient/*.rs", patient="a")) as client:
        own = client.get(f"Binary/{records['a']}", headers={"Accept": PDF})
        assert own.status_code == 200
        assert own.content == base64.b64decode(records["pdf"])
        for other in ("b", "loose"):
            answer = client.get(f"Binary/{records[other]}", headers={"Accept": "*/*"})
            assert answer.status_code == 404, other
            assert outcome_code(answer) == "not-found"
            as_json = client.get(f"Binary/{records[other]}")
            assert as_json.status_code == 404


def test_a_scope_on_the_document_alone_reads_its_content(smart: Smart,
                                                         records: dict[str, str]) -> None:
    with smart.client(smart.token("patient/DocumentReference.rs", patient="a")) as client:
        answer = client.get(f"Binary/{records['a']}", headers={"Accept": PDF})
        assert answer.status_code == 200
        assert client.get(f"Binary/{records['b']}", headers={"Accept": "*/*"}
                          ).status_code == 404


def test_a_scope_reading_every_binary_reads_them_all(smart: Smart,
                                                     records: dict[str, str]) -> None:
    with smart.client(smart.token("user/Binary.rs")) as client:
        for which in ("a", "b", "loose"):
            answer = client.get(f"Binary/{records[which]}", headers={"Accept": "*/*"})
            assert answer.status_code == 200, which
        assert client.get("Binary").status_code == 200


def _ids(bundle: httpx.Response, resource_type: str = "Binary") -> set[str]:
    assert bundle.status_code == 200, bundle.text
    return {e["resource"]["id"] for e in bundle.json().get("entry", ())
            if e.get("resource", {}).get("resourceType") == resource_type}


def test_searches_see_the_binaries_their_security_context_admits(
        smart: Smart, records: dict[str, str]) -> None:
    """Type and system searches, histories and includes apply the securityContext as a
    read by id does: nothing else of Binary is seen on any path."""
    with smart.client(smart.token("system/*.*")) as admin:
        provenance = admin.post("Provenance", json={
            "resourceType": "Provenance", "recorded": "2024-01-01T00:00:00Z",
            "target": [{"reference": "Patient/a"}, {"reference": f"Binary/{records['a']}"},
                       {"reference": f"Binary/{records['b']}"},
                       {"reference": f"Binary/{records['loose']}"}],
            "agent": [{"who": {"reference": "Patient/a"}}]},
            headers={"Content-Type": FHIR_JSON})
        assert provenance.status_code == 201, provenance.text
    hidden = {records["b"], records["loose"]}
    for scope in ("patient/*.rs",
                  "patient/Binary.rs patient/Provenance.rs patient/DocumentReference.rs"):
        with smart.client(smart.token(scope, patient="a")) as client:
            paths = ["Binary", "Binary?_count=1000", "?_type=Binary", "Binary/_history"]
            for path in paths:
                seen = _ids(client.get(path))
                assert records["a"] in seen, (scope, path)
                assert not seen & hidden, (scope, path)
            included = _ids(client.get("Provenance?_include=Provenance:target"))
            assert records["a"] in included and not included & hidden, scope
            for id in hidden:  # nor by _id, nor counted
                assert _ids(client.get(f"Binary?_id={id}")) == set()
                total = client.get(f"Binary?_id={id}&_summary=count")
                assert total.json()["total"] == 0
    # a's content hangs on its DocumentReference, which this scope does not read
    with smart.client(smart.token("patient/Binary.rs patient/Provenance.rs",
                                  patient="a")) as client:
        assert _ids(client.get("Binary")) == set()
        assert _ids(client.get("Provenance?_include=Provenance:target")) == set()
        assert client.get(f"Binary/{records['a']}").status_code == 404


def test_a_scope_without_binary_cannot_search_it(smart: Smart,
                                                 records: dict[str, str]) -> None:
    with smart.client(smart.token("patient/DocumentReference.rs", patient="a")) as client:
        answer = client.get("Binary")
        assert answer.status_code == 403
        assert outcome_code(answer) == "forbidden"


def test_security_context_must_be_readable_by_the_writer(smart: Smart,
                                                         records: dict[str, str]) -> None:
    with smart.client(smart.token("patient/*.cruds", patient="a")) as client:
        refused = client.post("Binary", content=b"x", headers={
            "Content-Type": "image/png", "X-Security-Context": "Patient/b"})
        assert refused.status_code == 422
        assert outcome_code(refused) == "processing"
        assert raw(client, b"mine", **{"X-Security-Context": "Patient/a"})
        as_json = client.post("Binary", json={
            "resourceType": "Binary", "contentType": "text/plain", "data": "eA==",
            "securityContext": {"reference": "Patient/b"}},
            headers={"Content-Type": FHIR_JSON})
        assert as_json.status_code == 422
        assert outcome_code(as_json) == "processing"


def test_writing_binary_needs_its_permission(smart: Smart, records: dict[str, str]) -> None:
    with smart.client(smart.token("patient/Patient.rs", patient="a")) as client:
        answer = client.post("Binary", content=b"x", headers={"Content-Type": "image/png"})
        assert answer.status_code == 403
        assert outcome_code(answer) == "forbidden"
