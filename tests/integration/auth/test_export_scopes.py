"""``$export`` with SMART tokens: the export runs with the caller's scopes (rebuilt by
the worker from those stored with the job), and its status and files are its client's."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from tests.integration.auth.conftest import Smart, outcome_code, put

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def _manifest(client: httpx.Client, status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = client.get(status_url)
        if answer.status_code == 200:
            return dict(answer.json())
        assert answer.status_code == 202, answer.text
        time.sleep(0.1)
    raise AssertionError("the export did not finish in time")


def test_export_sees_what_the_token_may_read(smart: Smart, system_client: httpx.Client
                                             ) -> None:
    for n, status in enumerate(["final", "preliminary"]):
        put(system_client, {"resourceType": "Observation", "id": f"xs-{n}", "status": status,
                            "code": {"text": "x"}})
    put(system_client, {"resourceType": "Patient", "id": "xs-p"})
    scope = "system/Observation.rs?status=final system/Patient.rs"
    with smart.client(smart.token(scope, client_id="exporter")) as client:
        started = client.get("/$export", params={"_type": "Observation"}, headers=ASYNC)
        assert started.status_code == 202, started.text
        status_url = started.headers["content-location"]
        manifest = _manifest(client, status_url)
        assert manifest["requiresAccessToken"] is True
        ids = []
        for output in manifest["output"]:
            answer = client.get(output["url"])
            assert answer.status_code == 200
            ids += [orjson.loads(line)["id"] for line in answer.content.splitlines()]
        assert "xs-0" in ids and "xs-1" not in ids
        # a type outside the scopes, named: 403 before any work
        refused = client.get("/$export", params={"_type": "Condition"}, headers=ASYNC)
        assert refused.status_code == 403
        assert outcome_code(refused) == "forbidden"
    with smart.client(smart.token("system/*.rs", client_id="someone-else")) as other:
        assert other.get(status_url).status_code == 404
        assert other.get(manifest["output"][0]["url"]).status_code == 404
        assert other.delete(status_url).status_code == 404
    with smart.client() as anonymous:
        assert anonymous.get(status_url).status_code == 401
    assert system_client.get(status_url).status_code == 200  # the admin sees every job
