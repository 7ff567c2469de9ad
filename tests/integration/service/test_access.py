"""An access scope reaches every path to the data: the request context of a caller who
may see one patient's compartment, sent through the router (as HTTP and Bundle entries
are) against real PostgreSQL, never shows another patient's data — by read, vread,
search, chain, ``_has``, include, revinclude, compartment search, history, totals,
conditional writes or Bundle entries — with the cache in front or not."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.routes import ROUTER
from fhir_server.cache.redis_client import open_redis
from fhir_server.cache.repository import CachedRepository
from fhir_server.runtime import build_context
from fhir_server.service.access import SYSTEM, AccessRule, AccessScope, RequestContext
from fhir_server.service.compartment import compartment
from fhir_server.service.context import ServiceContext
from fhir_server.settings import load_settings
from fhir_server.storage.pool import make_pool

BASE = "http://scope.test/fhir"
T = uuid.uuid4().hex[:8]
A, B, ORG = f"sa-{T}", f"sb-{T}", f"so-{T}"
MRN = "urn:scope-test"


class World:
    """One event loop, a system context and the means to send requests through it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ctx: ServiceContext) -> None:
        self.loop, self.ctx = loop, ctx

    def send(self, context: RequestContext, method: str, path: str, query: str = "",
             body: Any = None, **headers: str) -> FhirResponse:
        raw = None if body is None else orjson.dumps(body)
        head = {k.lower().replace("_", "-"): v for k, v in headers.items()}
        if raw is not None:
            head.setdefault("content-type", "application/fhir+json")
        request = FhirRequest(method, path, query, head, raw, base_url=BASE, context=context)
        ctx = self.ctx.for_request(context, BASE)
        return self.loop.run_until_complete(ROUTER.dispatch(request, ctx))

    def patient_scope(self, rules: tuple[AccessRule, ...] = (AccessRule(),)) -> RequestContext:
        """A caller who may see Patient A's compartment (and types outside it)."""
        return RequestContext("scoped", scope=AccessScope(
            rules, compartment(self.ctx, "Patient", A)))


def resources() -> list[dict[str, Any]]:
    def patient(pid: str, family: str) -> dict[str, Any]:
        return {"resourceType": "Patient", "id": pid, "name": [{"family": family}],
                "identifier": [{"system": MRN, "value": pid}],
                "managingOrganization": {"reference": f"Organization/{ORG}"}}

    def obs(oid: str, subject: str, code: str, **more: Any) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": oid, "status": "final",
                "code": {"coding": [{"system": MRN, "code": code}]},
                "subject": {"reference": f"Patient/{subject}"}, **more}

    return [
        {"resourceType": "Organization", "id": ORG, "name": f"Org {T}"},
        patient(A, f"Alpha{T}"), patient(B, f"Beta{T}"),
        obs(f"oa-{T}", A, f"c-{T}"),
        # in both compartments: A's subject, B the performer
        obs(f"oab-{T}", A, f"c-{T}", performer=[{"reference": f"Patient/{B}"}]),
        obs(f"ob-{T}", B, f"c-{T}"),
        obs(f"ob2-{T}", B, f"other-{T}"),
        {"resourceType": "Encounter", "id": f"eb-{T}", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                   "code": "AMB"}, "subject": {"reference": f"Patient/{B}"}},
    ]


@pytest.fixture(scope="module", params=["postgres", "postgres+redis"])
def world(request: pytest.FixtureRequest, migrated_url: str) -> Iterator[World]:
    redis_url = os.environ.get("REDIS_URL")
    if request.param == "postgres+redis" and not redis_url:
        pytest.skip("REDIS_URL is not set: the cached repository is tested with Redis only")
    env = {"DATABASE_URL": migrated_url, "DB_POOL_MAX": "4"}
    if request.param == "postgres+redis" and redis_url:
        env["REDIS_URL"] = redis_url
    settings = load_settings(env, env_file=None)
    loop = asyncio.new_event_loop()
    pool = make_pool(settings)
    loop.run_until_complete(pool.open(wait=True))
    redis = open_redis(settings, namespace=f"scope-{T}")
    ctx = build_context(settings, pool, redis)
    assert (redis is None) != isinstance(ctx.repository, CachedRepository)
    world = World(loop, ctx)
    for resource in resources():
        path = f"{resource['resourceType']}/{resource['id']}"
        assert world.send(SYSTEM, "PUT", path, body=resource).status in (200, 201)
    try:
        yield world
    finally:
        if redis is not None:
            loop.run_until_complete(redis.close())
        loop.run_until_complete(pool.close())
        loop.close()


def ids(response: FhirResponse) -> list[str]:
    """The resource ids in a searchset or history Bundle, in order."""
    assert response.status == 200, response.outcome or response.body
    return [e["resource"]["id"] for e in bundle_of(response).get("entry", [])
            if "resource" in e]


def bundle_of(response: FhirResponse) -> dict[str, Any]:
    """The response body as JSON (handlers may answer pre-serialized fragments)."""
    body = response.body
    result = orjson.loads(body if isinstance(body, bytes | str) else orjson.dumps(body))
    assert isinstance(result, dict)
    return result


def test_reads_of_what_the_scope_hides_are_404(world: World) -> None:
    scoped = world.patient_scope()
    for path in (f"Patient/{A}", f"Observation/oa-{T}", f"Observation/oab-{T}",
                 f"Organization/{ORG}", f"Patient/{A}/_history/1"):
        assert world.send(scoped, "GET", path).status == 200, path
    for path in (f"Patient/{B}", f"Observation/ob-{T}", f"Encounter/eb-{T}",
                 f"Patient/{B}/_history/1", f"Observation/ob-{T}/_history"):
        answer = world.send(scoped, "GET", path)
        assert answer.status == 404, path  # not 403: existence is not revealed
    assert world.send(SYSTEM, "GET", f"Patient/{B}").status == 200


def test_searches_chains_has_and_totals(world: World) -> None:
    scoped = world.patient_scope()
    tag = f"code={MRN}|c-{T}"
    assert sorted(ids(world.send(scoped, "GET", "Observation", tag))) == [
        f"oa-{T}", f"oab-{T}"]
    assert sorted(ids(world.send(SYSTEM, "GET", "Observation", tag))) == [
        f"oa-{T}", f"oab-{T}", f"ob-{T}"]
    assert ids(world.send(scoped, "GET", "Patient", f"family=Beta{T}")) == []
    assert ids(world.send(scoped, "GET", "Observation", f"subject.family=Beta{T}")) == []
    assert ids(world.send(scoped, "GET", "Observation",
                          f"subject:Patient.identifier={MRN}|{B}")) == []
    assert ids(world.send(scoped, "GET", "Patient",
                          f"_has:Observation:subject:code={MRN}|other-{T}")) == []
    assert ids(world.send(SYSTEM, "GET", "Patient",
                          f"_has:Observation:subject:code={MRN}|other-{T}")) == [B]
    # a _has through a hidden resource to a visible one finds nothing either
    assert ids(world.send(scoped, "GET", "Organization",
                          f"_id={ORG}&_has:Patient:organization:family=Beta{T}")) == []
    total = bundle_of(world.send(scoped, "GET", "Observation", f"{tag}&_total=accurate"))
    assert total["total"] == 2
    assert sorted(ids(world.send(scoped, "GET", "", f"_type=Patient,Encounter&_id={A},{B},eb-{T}"
                                 ))) == [A]


def test_includes_and_revincludes(world: World) -> None:
    scoped = world.patient_scope()
    found = ids(world.send(scoped, "GET", "Observation",
                           f"_id=oab-{T}&_include=Observation:performer"
                           "&_include=Observation:subject"))
    assert sorted(found) == sorted([f"oab-{T}", A])  # B, the performer, stays hidden
    found = ids(world.send(scoped, "GET", "Patient",
                           f"_id={A},{B}&_revinclude=Observation:subject"
                           "&_include=Patient:organization"))
    assert sorted(found) == sorted([A, ORG, f"oa-{T}", f"oab-{T}"])
    found = ids(world.send(scoped, "GET", "Organization",
                           f"_id={ORG}&_revinclude=Patient:organization"))
    assert sorted(found) == sorted([ORG, A])


def test_compartment_searches(world: World) -> None:
    scoped = world.patient_scope()
    assert sorted(ids(world.send(scoped, "GET", f"Patient/{A}/Observation"))) == [
        f"oa-{T}", f"oab-{T}"]
    # B's compartment as far as the caller may see it: what is also in A's
    assert ids(world.send(scoped, "GET", f"Patient/{B}/Observation")) == [f"oab-{T}"]
    assert ids(world.send(scoped, "GET", f"Patient/{B}/*")) == [f"oab-{T}"]
    assert sorted(ids(world.send(SYSTEM, "GET", f"Patient/{B}/*"))) == sorted(
        [f"oab-{T}", f"ob-{T}", f"ob2-{T}", f"eb-{T}"])


def test_history_at_every_level(world: World) -> None:
    scoped = world.patient_scope()
    mine = {A, f"oa-{T}", f"oab-{T}", ORG}
    hidden = {B, f"ob-{T}", f"ob2-{T}", f"eb-{T}"}
    for path in ("_history", "Patient/_history", "Observation/_history",
                 "Encounter/_history"):
        seen = set(ids(world.send(scoped, "GET", path, "_count=1000")))
        assert not seen & hidden, path
    assert mine <= set(ids(world.send(scoped, "GET", "_history", "_count=1000")))


def test_rules_with_criteria(world: World) -> None:
    rule = AccessRule("Observation", tuple(world.ctx.search.parser.criteria(
        "Observation", [("code", f"{MRN}|other-{T}")])))
    only_other = RequestContext("rules", scope=AccessScope((rule,)))
    assert ids(world.send(only_other, "GET", "Observation", f"subject=Patient/{B}")) == [
        f"ob2-{T}"]
    assert world.send(only_other, "GET", f"Observation/ob-{T}").status == 404
    assert world.send(only_other, "GET", f"Patient/{A}").status == 403  # no rule for it
    assert ids(world.send(only_other, "GET", "Observation",
                          f"subject.family=Beta{T}")) == []  # the chain's Patient hidden


def test_conditional_writes_do_not_find_hidden_resources(world: World) -> None:
    scoped = world.patient_scope()
    answer = world.send(scoped, "DELETE", "Patient", f"identifier={MRN}|{B}")
    assert answer.status in (200, 204)
    assert world.send(SYSTEM, "GET", f"Patient/{B}").status == 200
    answer = world.send(scoped, "PATCH", "Patient", f"identifier={MRN}|{B}",
                        body=[{"op": "replace", "path": "/active", "value": False}],
                        content_type="application/json-patch+json")
    assert answer.status == 404
    assert "active" not in bundle_of(world.send(SYSTEM, "GET", f"Patient/{B}"))


def test_bundle_entries_carry_the_scope(world: World) -> None:
    scoped = world.patient_scope()
    reads = [
        {"request": {"method": "GET", "url": f"Patient/{A}"}},
        {"request": {"method": "GET", "url": f"Patient?_id={A},{B}"}},
        {"request": {"method": "GET", "url": f"Observation?subject=Patient/{B}"}},
    ]
    hidden = [{"request": {"method": "GET", "url": f"Patient/{B}/_history"}},
              {"request": {"method": "GET", "url": f"Patient/{B}"}}]
    for kind, entries in (("batch", reads + hidden), ("transaction", reads)):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
        response = world.send(scoped, "POST", "", body=bundle)
        assert response.status == 200, response.outcome
        answer = bundle_of(response)["entry"]
        assert answer[0]["response"]["status"] == "200 OK"
        assert [e["resource"]["id"] for e in answer[1]["resource"].get("entry", [])] == [A]
        assert answer[2]["resource"].get("entry", []) == []
        assert [e["response"]["status"] for e in answer[3:]] == ["404 Not Found"] * (
            len(entries) - 3)
    for entry in hidden:  # a transaction fails as a whole on the hidden read
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [*reads, entry]}
        response = world.send(scoped, "POST", "", body=bundle)
        assert response.status == 404
        assert response.outcome is not None
        assert response.outcome["issue"][0]["diagnostics"].startswith("entry[3] (GET Patient/")


def test_writes_are_checked_against_the_scope_on_both_sides(world: World) -> None:
    """Old and new content must both be in the scope (with the cache in front too)."""
    writer = world.patient_scope((AccessRule(permissions=frozenset("rsc")),
                                  AccessRule("Observation", permissions=frozenset("u"))))
    theirs = {"resourceType": "Observation", "status": "final",
              "code": {"coding": [{"system": MRN, "code": f"w-{T}"}]},
              "subject": {"reference": f"Patient/{B}"}}
    refused = world.send(writer, "POST", "Observation", body=theirs)
    assert refused.status == 403
    assert ids(world.send(SYSTEM, "GET", "Observation", f"code={MRN}|w-{T}")) == []
    mine = {**theirs, "subject": {"reference": f"Patient/{A}"}}
    created = world.send(writer, "POST", "Observation", body=mine)
    assert created.status == 201
    # (the other tests of the module count A's Observations)
    new_id = bundle_of(created)["id"]
    assert world.send(SYSTEM, "DELETE", f"Observation/{new_id}").status in (200, 204)
    # B's Observation cannot be overwritten, not even with content in A's compartment
    moved = {**mine, "id": f"ob-{T}"}
    assert world.send(writer, "PUT", f"Observation/ob-{T}", body=moved).status == 403
    stored = bundle_of(world.send(SYSTEM, "GET", f"Observation/ob-{T}"))
    assert stored["subject"] == {"reference": f"Patient/{B}"}
    # nor can A's be moved out of A's compartment
    away = {**theirs, "id": f"oa-{T}"}
    assert world.send(writer, "PUT", f"Observation/oa-{T}", body=away).status == 403
    stored = bundle_of(world.send(SYSTEM, "GET", f"Observation/oa-{T}"))
    assert stored["subject"] == {"reference": f"Patient/{A}"}
    # no 'd' permission: the router refuses before anything is looked at
    assert world.send(writer, "DELETE", f"Observation/oa-{T}").status == 403
