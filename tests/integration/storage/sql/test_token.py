"""Token predicates against real idx_token rows, checked by an independent Python matcher.

Random resources (fixed seed) are indexed through ``fhir_write_index`` as the server does;
each query's rids must equal what a direct reading of the search specification gives.
"""

from __future__ import annotations

import random
import unicodedata
from typing import Any

import psycopg
import pytest
from psycopg import sql

from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.hashing import param_key
from fhir_server.search.token import TOKEN
from tests.integration.storage.sql.scratch import (
    matching_rids,
    named_rows,
    predicate,
    scratch_fixture,
    write_index,
)

P_CODE = param_key("Observation", "code")
P_LONG = param_key("Observation", "long")
P_ID = param_key("Patient", "identifier")
P_MISC = param_key("Patient", "misc")
SYSTEMS = [None, "http://s1", "http://s2"]
CODES = ["a", "b", "c", "a|b", "A", "ç", "x\\y"]
TEXTS = ["Café Crème", "cafe noir", "Héadache", "headache severe", "Ĉu"]
VALUESETS = {"http://vs/1": {("http://s1", "a"), ("http://s2", "b"), ("http://s1", "a|b")},
             "http://vs/2": {("http://s2", "A")}, "http://vs/empty": set()}
N = 90


def fold(text: str) -> str:
    """Independent case/accent folding for expectations."""
    decomposed = unicodedata.normalize("NFD", text)
    return " ".join("".join(c for c in decomposed if unicodedata.category(c) != "Mn")
                    .lower().split())


def make_resources(seed: int = 7) -> list[dict[str, Any]]:
    """Random resources: concepts, identifiers, long-list codes, flags, phones."""
    rnd = random.Random(seed)
    out = []
    for _ in range(N):
        concepts = []
        for _ in range(rnd.randint(0, 2)):
            codings = []
            for _ in range(rnd.randint(0, 3)):
                coding: dict[str, Any] = {"code": rnd.choice(CODES)}
                system = rnd.choice(SYSTEMS)
                if system:
                    coding["system"] = system
                if rnd.random() < 0.4:
                    coding["display"] = rnd.choice(TEXTS)
                codings.append(coding)
            concept: dict[str, Any] = {"coding": codings} if codings else {}
            if rnd.random() < 0.4 or not codings:
                concept["text"] = rnd.choice(TEXTS)
            concepts.append(concept)
        identifiers = []
        for _ in range(rnd.randint(0, 2)):
            ident: dict[str, Any] = {"value": rnd.choice(["1", "2", "3"])}
            if rnd.random() < 0.7:
                ident["system"] = rnd.choice(["urn:mrn", "urn:ssn"])
            if rnd.random() < 0.6:
                ident["type"] = {"coding": [{"system": "v2", "code": rnd.choice(["MR", "SS"])}]}
            identifiers.append(ident)
        out.append({"concepts": concepts, "identifiers": identifiers,
                    "long": rnd.sample(range(2000), rnd.randint(0, 3)),
                    "active": rnd.choice([True, False, None]),
                    "phone": rnd.choice(["555-1", "555-2", None])})
    return out


RESOURCES = make_resources()
conn = scratch_fixture()


@pytest.fixture(scope="module")
def db(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """The scratch database with every resource's token rows written."""
    ctx = IndexContext()
    index: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for rid, res in enumerate(RESOURCES, start=1):
        rows = TOKEN.rows(P_CODE, [Node(c, "CodeableConcept") for c in res["concepts"]], ctx)
        rows += TOKEN.rows(P_LONG, [Node({"code": f"c{i}"}, "Coding") for i in res["long"]],
                           ctx)
        rows += TOKEN.rows(P_ID, [Node(i, "Identifier") for i in res["identifiers"]], ctx)
        misc = [Node(res["active"], "boolean")] if res["active"] is not None else []
        if res["phone"]:
            misc.append(Node({"system": "phone", "value": res["phone"]}, "ContactPoint"))
        rows += TOKEN.rows(P_MISC, misc, ctx)
        index[rid] = {"token": named_rows(TOKEN, rows)}
    write_index(conn, index)
    return conn


def found(db: psycopg.Connection[Any], p: int, modifier: str | None, values: list[str],
          ctx: ParseContext | None = None) -> set[int]:
    """The rids the predicate selects (``:not``/``:not-in`` via NOT EXISTS)."""
    ctx = ctx or ParseContext()
    if modifier in ("not", "not-in"):  # as the compiler does: NOT EXISTS of the positive
        pred, params = predicate(TOKEN, p, ctx, values, modifier)
        query = sql.SQL("SELECT g FROM generate_series(1, %s) g WHERE NOT EXISTS"
                        " (SELECT 1 FROM idx_token a WHERE a.rid = g AND {})").format(pred)
        return {r[0] for r in db.execute(query, [N, *params])}
    return matching_rids(db, TOKEN, p, ctx, values, modifier)


def codings_of(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Every coding of a resource's concepts."""
    return [c for cc in res["concepts"] for c in cc.get("coding", [])]


def expect_codes(value: Meaning) -> set[int]:
    """``(system, code)``: None system = any system, '' = no system; None code = any."""
    system, code = value
    return {rid for rid, res in enumerate(RESOURCES, start=1) if any(
        (code is None or c["code"] == code)
        and (system is None or c.get("system", "") == system)
        for c in codings_of(res))}


def esc(text: str) -> str:
    """Escape a literal for a token search value."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,")


Meaning = tuple[str | None, str | None]


def make_queries() -> list[tuple[str, Meaning]]:
    """Search values with their meaning (see :func:`expect_codes`)."""
    out: list[tuple[str, Meaning]] = []
    for c in CODES:
        out += [(esc(c), (None, c)), ("|" + esc(c), ("", c))]
        out += [(f"{s}|{esc(c)}", (s, c)) for s in SYSTEMS if s]
    out += [(f"{s}|", (s, None)) for s in SYSTEMS if s]
    return [*out, ("nothing", (None, "nothing")), ("http://s9|a", ("http://s9", "a"))]


QUERIES = make_queries()


@pytest.mark.parametrize(("value", "meaning"), QUERIES, ids=[q[0] for q in QUERIES])
def test_single_values_and_not(db: psycopg.Connection[Any], value: str,
                               meaning: Meaning) -> None:
    expected = expect_codes(meaning)
    assert found(db, P_CODE, None, [value]) == expected
    assert found(db, P_CODE, "not", [value]) == set(range(1, N + 1)) - expected


def test_or_lists(db: psycopg.Connection[Any]) -> None:
    rnd = random.Random(3)
    for _ in range(40):
        picks = rnd.sample(QUERIES, rnd.randint(2, 6))
        expected = set().union(*(expect_codes(m) for _, m in picks))
        assert found(db, P_CODE, None, [v for v, _ in picks]) == expected, picks


def test_long_or_list_of_500(db: psycopg.Connection[Any]) -> None:
    wanted = random.Random(5).sample(range(2000), 500)
    expected = {rid for rid, res in enumerate(RESOURCES, start=1)
                if set(res["long"]) & set(wanted)}
    assert expected  # the sample hits some resources
    assert found(db, P_LONG, None, [f"c{i}" for i in wanted]) == expected
    assert found(db, P_CODE, None, [f"c{i}" for i in wanted]) == set()  # other parameter


@pytest.mark.parametrize("prefix", ["cafe", "CAFÉ C", "head", "héadache s", "zz", "ĉ", "c"])
def test_text_prefix_case_and_accent_insensitive(db: psycopg.Connection[Any],
                                                 prefix: str) -> None:
    expected = {rid for rid, res in enumerate(RESOURCES, start=1) if any(
        fold(t).startswith(fold(prefix))
        for t in [cc.get("text", "") for cc in res["concepts"]]
        + [c.get("display", "") for c in codings_of(res)] if t)}
    assert found(db, P_CODE, "text", [prefix]) == expected


def test_in_and_not_in(db: psycopg.Connection[Any]) -> None:
    ctx = ParseContext(expand_valueset=VALUESETS.get)
    for urls in (["http://vs/1"], ["http://vs/2"], ["http://vs/1", "http://vs/2"],
                 ["http://vs/empty"]):
        members = set().union(*(VALUESETS[u] for u in urls))
        # a value set's code matches a coding without a system too (an element of type
        # code is indexed without the system its binding implies)
        codes = {code for _, code in members}
        expected = {rid for rid, res in enumerate(RESOURCES, start=1) if any(
            (c.get("system"), c["code"]) in members
            or (not c.get("system") and c["code"] in codes) for c in codings_of(res))}
        assert found(db, P_CODE, "in", urls, ctx) == expected
        assert found(db, P_CODE, "not-in", urls, ctx) == set(range(1, N + 1)) - expected


def expect_identifier(system: str | None, value: str | None, type_code: str | None = None
                      ) -> set[int]:
    """Independent identifier matcher; None means any."""
    return {rid for rid, res in enumerate(RESOURCES, start=1) if any(
        (value is None or i["value"] == value)
        and (system is None or i.get("system", "") == system)
        and (type_code is None or type_code in [
            c["code"] for c in i.get("type", {}).get("coding", [])])
        for i in res["identifiers"])}


def test_identifiers_and_of_type(db: psycopg.Connection[Any]) -> None:
    for value in ["1", "2", "3", "4"]:
        assert found(db, P_ID, None, [value]) == expect_identifier(None, value)
        assert found(db, P_ID, None, ["|" + value]) == expect_identifier("", value)
        for system in ["urn:mrn", "urn:ssn"]:
            assert found(db, P_ID, None, [f"{system}|{value}"]) == expect_identifier(
                system, value)
        for type_code in ["MR", "SS"]:
            assert found(db, P_ID, "of-type", [f"v2|{type_code}|{value}"]) == (
                expect_identifier(None, value, type_code))
    assert found(db, P_ID, "of-type", ["v2|MR|1", "v2|SS|2"]) == (
        expect_identifier(None, "1", "MR") | expect_identifier(None, "2", "SS"))
    assert found(db, P_ID, "of-type", ["other|MR|1"]) == set()
    assert found(db, P_ID, None, ["urn:mrn|"]) == expect_identifier("urn:mrn", None)


def test_booleans_and_contact_points(db: psycopg.Connection[Any]) -> None:
    for flag in (True, False):
        assert found(db, P_MISC, None, [str(flag).lower()]) == {
            rid for rid, res in enumerate(RESOURCES, start=1) if res["active"] is flag}
    assert found(db, P_MISC, None, ["555-1"]) == {
        rid for rid, res in enumerate(RESOURCES, start=1) if res["phone"] == "555-1"}
    assert found(db, P_MISC, None, ["phone|555-1"]) == set()  # ContactPoint has no system


def test_contact_points_are_case_insensitive(conn: psycopg.Connection[Any]) -> None:
    p = 818181
    emails = {9001: "Ann.Lee@Example.org", 9002: "ann.lee@example.ORG", 9003: "bob@x.org"}
    write_index(conn, {rid: {"token": named_rows(TOKEN, TOKEN.rows(p, [Node(
        {"system": "email", "value": v}, "ContactPoint")], IndexContext()))}
        for rid, v in emails.items()})
    folded = ParseContext(fold_case=True)
    assert matching_rids(conn, TOKEN, p, folded, ["ANN.LEE@example.org"]) == {9001, 9002}
    assert matching_rids(conn, TOKEN, p, folded, ["|Bob@X.org"]) == {9003}
