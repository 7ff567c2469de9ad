"""Reference predicates, and chains, _has and _include through idx_reference, against
real rows.

Expectations are written by hand from the search specification's reference section.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.hashing import param_key
from fhir_server.search.reference import REFERENCE, identifier_nodes, identifier_param_key
from fhir_server.search.registry import SearchParam
from fhir_server.search.request import AnyClause, Clause, Criterion, HasClause, Link
from fhir_server.search.token import TOKEN
from fhir_server.storage.sql.compile import Compiler
from fhir_server.storage.sql.statements import include_forward, include_reverse
from tests.integration.storage.sql.scratch import (
    matching_rids,
    named_rows,
    scratch_fixture,
    write_index,
)

BASE = "https://h.example/fhir"
P = param_key("Observation", "subject")
P_ID = identifier_param_key("Observation", "subject")
Q = "http://q.org/Questionnaire/intake"

#: rid -> the subject node of an Observation with that rid
SUBJECTS: dict[int, Node] = {
    1: Node({"reference": "Patient/1"}, "Reference"),
    2: Node({"reference": f"{BASE}/Patient/1"}, "Reference"),
    3: Node({"reference": "Patient/2/_history/3"}, "Reference"),
    4: Node({"reference": "Group/1"}, "Reference"),
    5: Node({"reference": "http://other.org/fhir/Patient/1"}, "Reference"),
    6: Node({"reference": "http://other.org/fhir/Patient/1/_history/7"}, "Reference"),
    7: Node({"reference": "#contained"}, "Reference"),
    8: Node({"identifier": {"system": "urn:mrn", "value": "v8"}}, "Reference"),
    9: Node(f"{Q}|1.0", "canonical"),
    10: Node(f"{Q}|1.1", "canonical"),
    11: Node(f"{Q}|2.0", "canonical"),
    12: Node(Q, "canonical"),
    13: Node(f"{BASE}/Questionnaire/q1|3", "canonical"),
    14: Node({"reference": "Practitioner/1", "identifier": {"value": "v14"}}, "Reference"),
    15: Node({"reference": "Patient/10"}, "Reference"),
    16: Node({"reference": "urn:uuid:abc"}, "Reference"),
}
#: rid -> (type, id, deleted) of the referenced resources
TARGETS = {101: ("Patient", "1", False), 102: ("Patient", "2", False),
           103: ("Group", "1", False), 104: ("Practitioner", "1", False),
           105: ("Patient", "10", True)}
ALL_TYPES = ("Patient", "Group", "Practitioner")


conn = scratch_fixture()


@pytest.fixture(scope="module")
def db(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """The scratch database with reference, identifier and resource rows."""
    ctx = IndexContext(bases=(BASE,))
    insert = ("INSERT INTO resource (rid, resource_type, id, version_id, last_updated,"
              " deleted, content) OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, 1, now(), %s, %s)")
    for rid in SUBJECTS:
        conn.execute(insert, [rid, "Observation", f"o{rid}", False, Jsonb({})])
    write_index(conn, {
        rid: {"reference": named_rows(REFERENCE, REFERENCE.rows(P, [node], ctx)),
              "token": named_rows(TOKEN, TOKEN.rows(P_ID, identifier_nodes([node]), ctx))}
        for rid, node in SUBJECTS.items()})
    for rid, (rtype, rid_id, deleted) in TARGETS.items():
        conn.execute(insert, [rid, rtype, rid_id, deleted, None if deleted else Jsonb({})])
    return conn


def found(db: psycopg.Connection[Any], values: list[str], modifier: str | None = None,
          targets: tuple[str, ...] = ALL_TYPES) -> set[int]:
    """The rids the predicate selects."""
    ctx = ParseContext(bases=(BASE,), targets=targets)
    return matching_rids(db, REFERENCE, P, ctx, values, modifier)


CASES: list[tuple[list[str], str | None, tuple[str, ...], set[int]]] = [
    (["Patient/1"], None, ALL_TYPES, {1, 2}),
    ([f"{BASE}/Patient/1"], None, ALL_TYPES, {1, 2}),
    ([f"{BASE}/Patient/1/_history/9"], None, ALL_TYPES, set()),
    (["1"], None, ("Patient",), {1, 2}),
    (["1"], None, ALL_TYPES, {1, 2, 4, 14}),
    (["1"], None, (), {1, 2, 4, 14}),
    (["1"], "Patient", ALL_TYPES, {1, 2}),
    (["1"], "Group", ALL_TYPES, {4}),
    (["Group/1"], "Group", ALL_TYPES, {4}),
    (["Patient/2"], None, ALL_TYPES, {3}),
    (["Patient/2/_history/3"], None, ALL_TYPES, {3}),
    (["Patient/2/_history/4"], None, ALL_TYPES, set()),
    (["http://other.org/fhir/Patient/1"], None, ALL_TYPES, {5, 6}),
    (["http://other.org/fhir/Patient/1/_history/7"], None, ALL_TYPES, {6}),
    (["Patient/1", "Group/1", "Practitioner/1"], None, ALL_TYPES, {1, 2, 4, 14}),
    (["Patient/10", "2"], None, ("Patient",), {3, 15}),
    ([Q], None, ALL_TYPES, {9, 10, 11, 12}),
    ([f"{Q}|1.0"], None, ALL_TYPES, {9}),
    ([f"{Q}|1.0", f"{Q}|2.0"], None, ALL_TYPES, {9, 11}),
    ([f"{Q}|1"], None, ALL_TYPES, set()),
    ([f"{Q}|1"], "below", ALL_TYPES, {9, 10}),
    ([f"{Q}|2"], "below", ALL_TYPES, {11}),
    ([Q], "below", ALL_TYPES, {9, 10, 11, 12}),
    (["Questionnaire/q1"], None, ALL_TYPES, {13}),
    ([f"{BASE}/Questionnaire/q1"], None, ALL_TYPES, {13}),
    ([f"{BASE}/Questionnaire/q1|3"], None, ALL_TYPES, {13}),
    ([f"{BASE}/Questionnaire/q1|4"], None, ALL_TYPES, set()),
    (["urn:uuid:abc"], None, ALL_TYPES, {16}),
    (["contained"], None, (), set()),
    ([f"Patient/x{i}" for i in range(300)] + ["Patient/1"], None, ALL_TYPES, {1, 2}),
]


@pytest.mark.parametrize(("values", "modifier", "targets", "expected"), CASES,
                         ids=[f"{c[1]}:{','.join(c[0])[:60]}" for c in CASES])
def test_reference_search(db: psycopg.Connection[Any], values: list[str],
                          modifier: str | None, targets: tuple[str, ...],
                          expected: set[int]) -> None:
    assert found(db, values, modifier, targets) == expected


def test_identifier_modifier_through_tokens(db: psycopg.Connection[Any]) -> None:
    def by_identifier(value: str) -> set[int]:
        return matching_rids(db, TOKEN, P_ID, ParseContext(), [value])

    assert by_identifier("urn:mrn|v8") == {8}
    assert by_identifier("v14") == {14}
    assert by_identifier("urn:mrn|v14") == set()


SUBJECT = SearchParam("subject", "reference", "Observation", "", "Observation.subject",
                      targets=ALL_TYPES)
assert SUBJECT.p == P


def where(db: psycopg.Connection[Any], clause: AnyClause) -> set[int]:
    """The rids of the resources meeting one compiled clause."""
    res = sql.Identifier("res")
    cond, params = Compiler().clause(clause, res)
    query = sql.SQL("SELECT res.rid FROM resource res WHERE {}").format(cond)
    return {r[0] for r in db.execute(query, params)}


def test_compiled_criterion(db: psycopg.Connection[Any]) -> None:
    ctx = ParseContext(bases=(BASE,), targets=ALL_TYPES)
    values = tuple(REFERENCE.parse(P, None, v, ctx) for v in ["Patient/1", f"{Q}|2.0"])
    assert where(db, Clause("subject", (Criterion(SUBJECT, None, values),))) == {1, 2, 11}
    token = TOKEN.parse(P_ID, None, "urn:mrn|v8", ParseContext())
    assert where(db, Clause("subject:identifier",
                            (Criterion(SUBJECT, "identifier", (token,)),))) == {8}


def test_chain_and_has(db: psycopg.Connection[Any]) -> None:
    patient_id = SearchParam("_id", "token", "Patient", "", None)
    observation_id = SearchParam("_id", "token", "Observation", "", None)

    def chained(target_id: str) -> set[int]:
        return where(db, Clause("subject._id", (Criterion(patient_id, None, (target_id,)),),
                                (Link(SUBJECT, ("Patient",)),)))

    assert chained("1") == {1, 2}
    assert chained("2") == {3}
    assert chained("10") == set()  # the target is deleted

    has = HasClause("_has:Observation:subject:_id", "Observation", SUBJECT,
                    Clause("_id", (Criterion(observation_id, None, ("o3", "o4")),)))
    assert where(db, has) == {102, 103}


def test_include_and_revinclude(db: psycopg.Connection[Any]) -> None:
    def rids(fragment: tuple[Any, list[Any]]) -> set[int]:
        return {r[0] for r in db.execute(fragment[0], fragment[1])}

    def targets(*rids: int) -> list[tuple[str, str]]:
        return [(TARGETS[r][0], TARGETS[r][1]) for r in rids]

    assert rids(include_forward([1, 3, 4, 15], [P], None, 100)) == {101, 102, 103}
    assert rids(include_forward([1, 3, 4, 15], [P], "Patient", 100)) == {101, 102}
    assert rids(include_forward([1, 3], [P_ID], None, 100)) == set()
    assert len(rids(include_forward([1, 3, 4], [P], None, 2))) == 2  # the limit
    assert rids(include_reverse(targets(101), [P], 100)) == {1, 2}
    assert rids(include_reverse(targets(101, 104, 105), [P], 100)) == {1, 2, 14, 15}
