"""Self-hosted Swagger UI and the route serving the OpenAPI document (no database needed)."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fhir_server.api.docs import docs_router

from fhir_server.api.openapi import openapi_provider

TYPES = ["Patient", "Encounter"]
SEARCH = {"Patient": [("name", "string", "A portion of the name"),
                      ("birthdate", "date", "Date of birth"),
                      ("_count", "number", "duplicate of a common parameter")]}


class _AssetRefs(HTMLParser):
    """Collect every ``<script src>`` and ``<link href>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []  # (tag/rel, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.refs.append(("script", a["src"] or ""))
        elif tag == "link" and a.get("href"):
            self.refs.append((a.get("rel") or "link", a["href"] or ""))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """A bare app like the real one: FastAPI's own docs off, only the docs router."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(docs_router(openapi_provider(TYPES, version="1.2.3",
                                                    search_params=SEARCH)))
    with TestClient(app) as test_client:
        yield test_client


def _page_refs(client: TestClient) -> tuple[str, list[tuple[str, str]]]:
    resp = client.get("/api/docs")
    assert resp.status_code == 200
    parser = _AssetRefs()
    parser.feed(resp.text)
    return resp.text, parser.refs


def test_docs_page_loads(client: TestClient) -> None:
    resp = client.get("/api/docs")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert 'id="swagger-ui"' in resp.text
    assert 'data-openapi-url="/api/openapi.json"' in resp.text
    # No inline script is needed, so the page can forbid it.
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert "<script>" not in resp.text


def test_page_references_only_local_assets(client: TestClient) -> None:
    text, refs = _page_refs(client)
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    kinds = [kind for kind, _ in refs]
    assert kinds.count("script") == 2 and "stylesheet" in kinds
    for _, url in refs:
        assert url.startswith("/api/docs/static/"), url


def test_every_referenced_asset_is_served(client: TestClient) -> None:
    _, refs = _page_refs(client)
    expected = {"script": "javascript", "stylesheet": "text/css", "icon": "image/png"}
    for kind, url in refs:
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert expected[kind] in resp.headers["content-type"], (url, resp.headers)
        assert len(resp.content) > 100
        assert "immutable" in resp.headers["cache-control"]
        assert resp.headers["x-content-type-options"] == "nosniff"
    bundle = next(u for k, u in refs if k == "script" and "swagger-ui-bundle" in u)
    assert b"SwaggerUIBundle" in client.get(bundle).content


def test_asset_revalidation(client: TestClient) -> None:
    first = client.get("/api/docs/static/swagger-ui.css")
    # Without the page's hash token the URL is not versioned, so no immutable caching.
    assert first.status_code == 200 and "immutable" not in first.headers["cache-control"]
    again = client.get("/api/docs/static/swagger-ui.css",
                       headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_head_is_allowed(client: TestClient) -> None:
    assert client.head("/api/docs").status_code == 200
    assert client.head("/api/docs/static/swagger-ui.css").status_code == 200


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
])
def test_traversal_and_unknown_files_are_404(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404, (path, resp.status_code)
    assert b"SwaggerUI" not in resp.content and b"import " not in resp.content


def test_root_path_is_honoured() -> None:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(docs_router(lambda: b"{}"))
    with TestClient(app, root_path="/base") as test_client:
        text, refs = _page_refs(test_client)
    assert 'data-openapi-url="/base/api/openapi.json"' in text
    assert refs and all(url.startswith("/base/api/docs/static/") for _, url in refs)


def test_openapi_json_serves_the_provided_document(client: TestClient) -> None:
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["cache-control"] == "no-cache"
    spec = orjson.loads(resp.content)
    assert spec["info"]["version"] == "1.2.3" and "/fhir/Patient" in spec["paths"]
