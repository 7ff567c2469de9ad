"""``_explain=true``: the statements of a search with their plans, for operators only.

In process, on a scratch database, with AUTH_MODE=smart: the admin scope gets the plans
of every search kind; any other token gets a 403, and the storage (instrumented: every
search, count and explain that reaches the repository is counted) is never asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.auth.keys import read_keys
from fhir_server.auth.tokens import issue_access_token, issuer_for
from fhir_server.paths import data_dir
from fhir_server.search.request import SearchRequest
from fhir_server.service.access import AccessScope
from fhir_server.service.delegating import Delegating
from fhir_server.service.repository import (
    ExplainingStore,
    Readiness,
    Repository,
    SearchPage,
)
from fhir_server.settings import load_settings
from fhir_server.storage.admin import apply_migrations
from tests.integration.search.scratch import admin_url, scratch_url

BASE = "http://localhost"
FHIR = f"{BASE}/fhir"


class Counting(Delegating[Repository]):
    """A repository counting the searches and explains that reach it (scoped views too)."""

    def __init__(self, inner: Repository, calls: list[str]) -> None:
        super().__init__(inner)
        self.calls = calls

    async def search(self, request: SearchRequest, count: int,
                     max_bytes: int | None = None) -> SearchPage:
        self.calls.append("search")
        return await super().search(request, count, max_bytes)

    async def count(self, request: SearchRequest) -> int:
        self.calls.append("count")
        return await super().count(request)

    @asynccontextmanager
    async def explaining(self) -> AsyncIterator[ExplainingStore]:
        self.calls.append("explain")
        async with self._inner.explaining() as store:
            yield store

    def transaction(self) -> Any:
        return self._inner.transaction()

    def scoped(self, scope: AccessScope) -> Repository:
        return Counting(self._inner.scoped(scope), self.calls)

    async def readiness(self) -> Readiness:
        return await self._inner.readiness()


@dataclasses.dataclass
class Api:
    client: TestClient
    url: str
    calls: list[str]

    def headers(self, scope: str) -> dict[str, str]:
        keys = read_keys(self.url)
        token, _ = issue_access_token(keys, issuer=issuer_for(FHIR), audience=FHIR,
                                      client_id="explainer", scope=scope, ttl=600)
        return {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}


@pytest.fixture(scope="module")
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    with scratch_url(admin_url(request), "explain") as url:
        apply_migrations(url, data_dir("migrations"))
        settings = load_settings({"DATABASE_URL": url, "AUDIT": "false",
                                  "DB_POOL_MIN": "1", "DB_POOL_MAX": "4",
                                  "MAX_IN_FLIGHT_PER_CLIENT": "0"}, env_file=None)
        app = create_app(settings)
        with TestClient(app, base_url=BASE) as client:
            calls: list[str] = []
            ctx = app.state.ctx
            app.state.ctx = dataclasses.replace(ctx, repository=Counting(ctx.repository,
                                                                          calls))
            yield Api(client, url, calls)


ADMIN = "system/*.*"


def _queries(body: dict[str, Any]) -> list[dict[str, Any]]:
    assert body["resourceType"] == "Parameters"
    out = []
    for parameter in body["parameter"]:
        assert parameter["name"] == "query"
        parts = {p["name"]: next(v for k, v in p.items() if k.startswith("value"))
                 for p in parameter["part"]}
        assert list(parts)[:4] == ["purpose", "sql", "parameters", "plan"]
        out.append(parts)
    return out


def _patient_with_observations(api: Api, n: int) -> str:
    admin = api.headers(ADMIN)
    created = api.client.post("/fhir/Patient", headers=admin,
                              json={"resourceType": "Patient", "name": [{"family": "Plan"}]})
    assert created.status_code == 201
    pid = created.json()["id"]
    for _ in range(n):
        assert api.client.post("/fhir/Observation", headers=admin, json={
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{pid}"}}).status_code == 201
    return str(pid)


def test_type_search_explains_the_page_count_and_includes(api: Api) -> None:
    pid = _patient_with_observations(api, 3)
    answer = api.client.get(
        "/fhir/Observation", headers=api.headers(ADMIN),
        params={"code": "http://loinc.org|8867-4", "subject": f"Patient/{pid}",
                "_count": "2", "_total": "accurate", "_include": "Observation:subject",
                "_explain": "true"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    queries = _queries(answer.json())
    assert [q["purpose"] for q in queries] == ["search", "count", "include"]
    page = queries[0]
    assert page["sql"].startswith("SELECT ")
    assert "$1" in page["sql"] and "%s" not in page["sql"]
    values = orjson.loads(page["parameters"])
    assert values[0] == "Observation" and values[-1] == 3  # the type ... _count + 1
    plan = orjson.loads(page["plan"])
    assert plan[0]["Plan"]["Actual Loops"] == 1  # ANALYZE ran it
    assert "Shared Hit Blocks" in plan[0]["Plan"]  # BUFFERS
    assert page["planningTime"] == plan[0]["Planning Time"] > 0
    assert page["executionTime"] == plan[0]["Execution Time"] > 0
    include = queries[2]
    assert orjson.loads(include["plan"])[0]["Plan"]["Actual Rows"] >= 1


def test_system_compartment_and_post_searches_are_explained(api: Api) -> None:
    pid = _patient_with_observations(api, 1)
    admin = api.headers(ADMIN)
    system = api.client.get("/fhir", headers=admin,
                            params={"_type": "Patient,Observation", "_explain": "true"})
    assert system.status_code == 200, system.text
    assert [q["purpose"] for q in _queries(system.json())] == ["search"]
    compartment = api.client.get(f"/fhir/Patient/{pid}/Observation?_explain=true",
                                 headers=admin)
    assert compartment.status_code == 200, compartment.text
    assert [q["purpose"] for q in _queries(compartment.json())] == ["search"]
    posted = api.client.post("/fhir/Observation/_search", headers={
        **admin, "Content-Type": "application/x-www-form-urlencoded"},
        content=f"subject=Patient/{pid}&_explain=true")
    assert posted.status_code == 200, posted.text
    assert [q["purpose"] for q in _queries(posted.json())] == ["search"]
    off = api.client.get(f"/fhir/Observation?subject=Patient/{pid}&_explain=false",
                         headers=admin)
    assert off.status_code == 200
    assert off.json()["resourceType"] == "Bundle"
    assert off.json()["link"][0]["url"] == f"{FHIR}/Observation?subject=Patient/{pid}"


@pytest.mark.parametrize("scope", ["system/*.rs", "system/Observation.rs",
                                   "user/*.*", "patient/*.rs"])
def test_anyone_but_an_operator_gets_a_403_and_nothing_runs(api: Api, scope: str) -> None:
    headers = api.headers(scope)
    if scope.startswith("patient/"):
        headers = {**headers, "Authorization": "Bearer " + issue_access_token(
            read_keys(api.url), issuer=issuer_for(FHIR), audience=FHIR,
            client_id="explainer", scope=scope, ttl=600, patient="p1")[0]}
    api.calls.clear()
    answer = api.client.get("/fhir/Observation?code=8867-4&_explain=true", headers=headers)
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "forbidden"
    assert body["issue"][0]["diagnostics"] == "_explain needs the admin scope (system/*.*)"
    assert api.calls == []
    # the same search without _explain does reach the storage (the counter works)
    assert api.client.get("/fhir/Observation?code=8867-4",
                          headers=headers).status_code == 200
    assert api.calls == ["search"]


def test_a_bad_value_and_a_bundle_entry_are_refused(api: Api) -> None:
    admin = api.headers(ADMIN)
    bad = api.client.get("/fhir/Observation?_explain=yes", headers=admin)
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["diagnostics"] == "_explain takes true or false, not 'yes'"
    batch = api.client.post("/fhir", headers={**admin, "Content-Type": "application/fhir+json"},
                            json={"resourceType": "Bundle", "type": "batch", "entry": [
                                {"request": {"method": "GET",
                                             "url": "Observation?_explain=true"}}]})
    assert batch.status_code == 200
    entry = batch.json()["entry"][0]
    assert entry["response"]["status"] == "400 Bad Request"
    assert entry["response"]["outcome"]["issue"][0]["diagnostics"] == (
        "entry[0] (GET Observation?_explain=true): _explain is not available in a batch "
        "or transaction entry: send the search on its own")


def test_the_explained_statements_run_read_only_and_change_nothing(api: Api) -> None:
    # EXPLAIN ANALYZE runs the statement: inside, the transaction must be read only
    import asyncio

    from fhir_server.settings import load_settings as settings_of
    from fhir_server.storage.pool import make_pool
    from fhir_server.storage.repository import PgRepository

    async def main() -> Sequence[str]:
        pool = make_pool(settings_of({"DATABASE_URL": api.url, "DB_POOL_MIN": "1"},
                                     env_file=None))
        await pool.open()
        try:
            repo = PgRepository(pool, data_dir("migrations"))
            async with repo.explaining() as session:
                conn = session._conn
                cur = await conn.execute("SHOW transaction_read_only")
                row = await cur.fetchone()
                await session.search(SearchRequest(("Patient",)), 5)
                assert [p.purpose for p in session.plans] == ["search"]
                return [str(row[0]) if row else ""]
        finally:
            await pool.close()

    assert asyncio.run(main()) == ["on"]
