"""Trusted hosts: which Host headers may name links, and the middleware refusing others."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from fhir_server.http.hosts import TrustedHosts, host_allowed, host_name

DEFAULT = ("localhost", "127.0.0.1", "::1")


@pytest.mark.parametrize(("value", "name"), [
    ("LocalHost:3000", "localhost"), ("fhir.example.org", "fhir.example.org"),
    ("[::1]:3000", "::1"), ("[::1]", "::1"), ("::1", "::1"), (" 127.0.0.1:80 ", "127.0.0.1"),
])
def test_host_name(value: str, name: str) -> None:
    assert host_name(value) == name


@pytest.mark.parametrize(("host", "allowed", "expected"), [
    ("localhost:3000", DEFAULT, True), ("[::1]:8080", DEFAULT, True),
    ("evil.example", DEFAULT, False), ("localhost.evil.example", DEFAULT, False),
    (None, DEFAULT, False), ("", DEFAULT, False),
    ("anything.example:1", ("*",), True), (None, ("*",), True),
    ("FHIR.example.org", ("fhir.example.org:443",), True),
    ("fhir-server", ("fhir-server", "fhir-server.default.svc"), True),
])
def test_host_allowed(host: str | None, allowed: tuple[str, ...], expected: bool) -> None:
    assert host_allowed(host, allowed) is expected


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def client(root_path: str = "") -> TestClient:
    app = TrustedHosts(Starlette(routes=[Route("/fhir{rest:path}", ok),
                                         Route("/auth/token", ok, methods=["POST"]),
                                         Route("/.well-known/openid-configuration", ok),
                                         Route("/api/v1/health", ok)]),
                       allowed=DEFAULT)
    return TestClient(app, base_url="http://evil.example", root_path=root_path)


@pytest.mark.parametrize("path", ["/fhir", "/fhir/Patient", "/.well-known/openid-configuration"])
def test_linked_paths_refuse_a_host_not_allowed(path: str) -> None:
    refused = client().get(path)
    assert refused.status_code == 400
    issue = refused.json()["issue"][0]
    assert issue["code"] == "invalid"
    assert "'evil.example'" in issue["diagnostics"]
    assert "FHIR_BASE_URL" in issue["diagnostics"]
    assert client().post("/auth/token").status_code == 400


def test_other_paths_and_allowed_hosts_pass() -> None:
    assert client().get("/api/v1/health").text == "ok"
    assert client().get("/fhir/Patient", headers={"Host": "localhost:3000"}).text == "ok"


def test_the_root_path_is_not_part_of_the_check() -> None:
    assert client(root_path="/base").get("/base/fhir/Patient").status_code == 400
