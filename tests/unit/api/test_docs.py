"""Self-hosted Swagger UI and the routes serving the OpenAPI documents (no database)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from html.parser import HTMLParser

import orjson
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from fhir_server.http.docs import OpenApiSource, docs_routes

SYSTEM = orjson.dumps({"openapi": "3.1.0", "info": {"title": "t", "version": "1.2.3"},
                       "paths": {"/fhir/{resource_type}": {}}})


class FakeDocuments:
    """Two types' documents, counting how often each is asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @property
    def names(self) -> Sequence[str]:
        return ("Encounter", "Patient")

    def system(self) -> bytes:
        self.asked.append("system")
        return SYSTEM

    def document(self, name: str) -> bytes | None:
        self.asked.append(name)
        if name not in self.names:
            return None
        return orjson.dumps({"openapi": "3.1.0", "info": {"title": name, "version": "1"},
                             "paths": {f"/fhir/{name}": {}}})


class _Refs(HTMLParser):
    """Every ``<script src>``, ``<link href>`` and ``<option>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []  # (tag/rel, url)
        self.options: list[tuple[str, str]] = []  # (data-name, value)
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            if a.get("src"):
                self.refs.append(("script", a["src"] or ""))
            else:
                self.inline_scripts += 1
        elif tag == "link" and a.get("href"):
            self.refs.append((a.get("rel") or "link", a["href"] or ""))
        elif tag == "option":
            self.options.append((a.get("data-name") or "", a.get("value") or ""))


def _app(source: OpenApiSource | bytes) -> Starlette:
    return Starlette(routes=docs_routes(lambda: source))


@pytest.fixture()
def fake() -> FakeDocuments:
    return FakeDocuments()


@pytest.fixture()
def client(fake: FakeDocuments) -> Iterator[TestClient]:
    with TestClient(_app(fake)) as test_client:
        yield test_client


def _page(client: TestClient) -> tuple[str, _Refs]:
    resp = client.get("/api/docs")
    assert resp.status_code == 200
    parser = _Refs()
    parser.feed(resp.text)
    return resp.text, parser


def test_docs_page(client: TestClient, fake: FakeDocuments) -> None:
    resp = client.get("/api/docs")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "default-src 'none'" in csp
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    text, parser = _page(client)
    assert parser.inline_scripts == 0 and "<script>" not in text
    assert 'id="swagger-ui" data-openapi-url="/api/openapi.json"' in text
    # The selector: the system document first, then one per type, none fetched yet.
    assert parser.options == [("system", "/api/openapi.json"),
                              ("Encounter", "/api/openapi/Encounter.json"),
                              ("Patient", "/api/openapi/Patient.json")]
    assert fake.asked == []


def test_page_references_only_local_assets(client: TestClient) -> None:
    text, parser = _page(client)
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    kinds = sorted(kind for kind, _ in parser.refs)
    assert kinds == ["icon", "script", "script", "stylesheet", "stylesheet"]
    for _, url in parser.refs:
        assert url.startswith("/api/docs/static/") and "?v=" in url, url


def test_every_referenced_asset_is_served(client: TestClient) -> None:
    _, parser = _page(client)
    expected = {"script": "text/javascript; charset=utf-8",
                "stylesheet": "text/css; charset=utf-8", "icon": "image/png"}
    for kind, url in parser.refs:
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert resp.headers["content-type"] == expected[kind], url
        assert len(resp.content) > 100
        assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert resp.headers["x-content-type-options"] == "nosniff"
    scripts = [u for k, u in parser.refs if k == "script"]
    assert b"SwaggerUIBundle" in client.get(scripts[0]).content
    init = client.get(scripts[1]).content
    assert b'getElementById("fhir-doc")' in init and b"validatorUrl: null" in init
    assert b"specActions.download" in init


def test_asset_revalidation(client: TestClient) -> None:
    first = client.get("/api/docs/static/swagger-ui.css")
    # Without the page's hash token the URL is not versioned, so no immutable caching.
    assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
    again = client.get("/api/docs/static/swagger-ui.css",
                       headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]


def test_head_is_allowed(client: TestClient) -> None:
    for path in ("/api/docs", "/api/docs/static/swagger-ui.css", "/api/openapi.json",
                 "/api/openapi/Patient.json"):
        assert client.head(path).status_code == 200, path


@pytest.mark.parametrize("path", [
    "/api/docs/static/..%2F..%2Fdocs.py",
    "/api/docs/static/..%2Fdocs.py",
    "/api/docs/static/%2e%2e",
    "/api/docs/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/api/docs/static/..%5C..%5Cdocs.py",
    "/api/docs/static/%2Fetc%2Fpasswd",
    "/api/docs/static/__init__.py",  # exists in the asset package, but not allow-listed
    "/api/docs/static/swagger-ui.css%00.js",
    "/api/docs/static/missing.js",
    "/api/docs/static/",
    "/api/openapi/Nope.json",
    "/api/openapi/..%2Fopenapi.json",
    "/api/openapi/Patient.yaml",
    "/api/openapi/.json",
])
def test_traversal_and_unknown_files_are_404(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404, (path, resp.status_code)
    assert b"SwaggerUI" not in resp.content and b"openapi" not in resp.content


def test_system_document(client: TestClient) -> None:
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.content == SYSTEM
    again = client.get("/api/openapi.json", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_type_document_loaded_on_demand(client: TestClient, fake: FakeDocuments) -> None:
    resp = client.get("/api/openapi/Patient.json")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.content == fake.document("Patient")
    assert fake.asked == ["Patient", "Patient"]
    stale = client.get("/api/openapi/Patient.json", headers={"If-None-Match": '"stale"'})
    assert stale.status_code == 200


def test_root_path_is_honoured(fake: FakeDocuments) -> None:
    with TestClient(_app(fake), root_path="/base") as test_client:
        text, parser = _page(test_client)
        spec = test_client.get("/api/openapi.json")
        patient = test_client.get("/api/openapi/Patient.json")
    assert 'data-openapi-url="/base/api/openapi.json"' in text
    assert parser.refs and all(u.startswith("/base/api/docs/static/") for _, u in parser.refs)
    assert parser.options[1] == ("Encounter", "/base/api/openapi/Encounter.json")
    # The paths are /fhir/... from the server root, so the documents name the root path.
    assert orjson.loads(spec.content)["servers"] == [{"url": "/base"}]
    assert orjson.loads(patient.content)["servers"] == [{"url": "/base"}]
    assert orjson.loads(spec.content)["info"]["version"] == "1.2.3"


def test_bare_system_json_still_works() -> None:
    with TestClient(_app(SYSTEM)) as test_client:
        _, parser = _page(test_client)
        assert parser.options == [("system", "/api/openapi.json")]
        assert test_client.get("/api/openapi.json").content == SYSTEM
        assert test_client.get("/api/openapi/Patient.json").status_code == 404


def test_real_documents_are_served() -> None:
    from fhir_server.api.openapi import OpenApiDocuments
    from tests.unit.api.test_openapi import make_facts

    documents = OpenApiDocuments(make_facts())
    with TestClient(_app(documents)) as test_client:
        _, parser = _page(test_client)
        assert len(parser.options) == 1 + len(documents.names)
        for name, url in parser.options[:3] + parser.options[-2:]:
            resp = test_client.get(url)
            assert resp.status_code == 200, url
            expected = documents.system() if name == "system" else documents.document(name)
            assert resp.content == expected
