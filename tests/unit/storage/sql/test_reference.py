"""The SQL of each reference search form on idx_reference, and of the joins through it
(chains, _has, _include, _revinclude), without a database."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from fhir_server.search.base import ParseContext
from fhir_server.search.hashing import h64
from fhir_server.search.reference import REFERENCE, ReferenceValue, identifier_param_key
from fhir_server.search.registry import SearchParam
from fhir_server.search.request import Clause, Criterion, HasClause, Link
from fhir_server.search.token import TOKEN
from fhir_server.storage.sql.compile import Compiler
from fhir_server.storage.sql.kinds import SQL_TYPES
from fhir_server.storage.sql.reference import REFERENCE as REFERENCE_SQL
from fhir_server.storage.sql.statements import include_forward, include_reverse

P = 11
A = sql.Identifier("a")
BASE = "https://h.example/fhir"


def render(modifier: str | None, values: list[str], targets: tuple[str, ...] = ()
           ) -> tuple[str, list[Any]]:
    """The predicate of the parsed values as SQL text and its parameters."""
    ctx = ParseContext(bases=(BASE,), targets=targets)
    typed = [REFERENCE.parse(P, modifier, v, ctx) for v in values]
    fragment, params = REFERENCE_SQL.predicate(P, modifier, typed, A)
    return fragment.as_string(None), params


def test_table() -> None:
    assert REFERENCE_SQL.table == "idx_reference"
    assert SQL_TYPES["reference"] is REFERENCE_SQL


def test_type_and_id() -> None:
    assert render(None, ["Patient/1"]) == (
        '"a"."p" = %s AND ("a"."target_type" = %s AND "a"."target_id" = ANY(%s::text[]))',
        [P, "Patient", ["1"]])


def test_id_only_with_one_target_many_or_none() -> None:
    assert render(None, ["1", "2"], ("Patient",))[1] == [P, "Patient", ["1", "2"]]
    text, params = render(None, ["1"], ("Patient", "Group"))
    assert text == ('"a"."p" = %s AND ("a"."target_type" = ANY(%s::text[])'
                    ' AND "a"."target_id" = ANY(%s::text[]))')
    assert params == [P, ["Patient", "Group"], ["1"]]
    assert render(None, ["1"]) == ('"a"."p" = %s AND "a"."target_id" = ANY(%s::text[])',
                                   [P, ["1"]])


def test_type_modifier() -> None:
    assert render("Patient", ["Patient/2", "1"], ("Patient", "Group"))[1] == [
        P, "Patient", ["2", "1"]]


def test_repeated_ids_are_one() -> None:
    assert render(None, ["Patient/1", "Patient/1", "1"], ("Patient",))[1] == [
        P, "Patient", ["1"]]


def test_versioned() -> None:
    text, params = render(None, ["Patient/1/_history/2", "Patient/3/_history/1"])
    assert text == ('"a"."p" = %s AND ("a"."target_type", "a"."target_id", "a"."version")'
                    ' IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))')
    assert params == [P, ["Patient", "Patient"], ["1", "3"], ["2", "1"]]


def test_local_absolute_matches_type_id_and_url() -> None:
    text, params = render(None, [f"{BASE}/Patient/1"])
    assert text == ('"a"."p" = %s AND (("a"."target_type" = %s AND "a"."target_id" ='
                    ' ANY(%s::text[])) OR "a"."url" = ANY(%s::text[]))')
    assert params == [P, "Patient", ["1"], [f"{BASE}/Patient/1"]]


def test_external_and_canonical() -> None:
    values = ["http://o/Patient/1", "http://o/Q|2", "http://o/Patient/1/_history/2"]
    text, params = render(None, values)
    assert text == ('"a"."p" = %s AND ("a"."url" = ANY(%s::text[]) OR ("a"."url",'
                    ' "a"."version") IN (SELECT * FROM unnest(%s::text[], %s::text[])))')
    assert params == [P, ["http://o/Patient/1"], ["http://o/Q", "http://o/Patient/1"],
                      ["2", "2"]]


def test_canonical_below() -> None:
    text, params = render("below", ["http://o/Q|1", "http://o/R"])
    assert text == ('"a"."p" = %s AND (("a"."url" = %s AND ("a"."version" = %s OR'
                    ' "a"."version" LIKE %s)) OR "a"."url" = %s)')
    assert params == [P, "http://o/Q", "1", "1.%", "http://o/R"]
    assert render("below", ["http://o/Q|1_0"])[1][-1] == "1\\_0.%"  # LIKE escaped


def test_no_values_match_nothing() -> None:
    fragment, params = REFERENCE_SQL.predicate(P, None, [ReferenceValue()], A)
    assert (fragment.as_string(None), params) == ('"a"."p" = %s AND false', [P])


def test_sort_key() -> None:
    assert REFERENCE_SQL.sort_key(A, False).as_string(None) == (
        'min(coalesce("a"."target_type" || \'/\' || "a"."target_id", "a"."url"))')
    assert REFERENCE_SQL.sort_key(A, True).as_string(None).startswith("max(")


# -- the joins through idx_reference -----------------------------------------------------

SUBJECT = SearchParam("subject", "reference", "Observation", "", "Observation.subject",
                      targets=("Patient", "Group"))
PATIENT_ID = SearchParam("_id", "token", "Patient", "", None)
OBSERVATION_ID = SearchParam("_id", "token", "Observation", "", None)
RES = sql.Identifier("res")


def test_criterion_is_an_exists_on_the_index() -> None:
    value = REFERENCE.parse(SUBJECT.p, None, "Patient/1", ParseContext())
    text, params = Compiler().clause(
        Clause("subject", (Criterion(SUBJECT, None, (value,)),)), RES)
    assert text.as_string(None) == (
        'EXISTS (SELECT 1 FROM "idx_reference" "a1" WHERE "a1".rid = "res".rid AND'
        ' "a1"."p" = %s AND ("a1"."target_type" = %s AND "a1"."target_id" = ANY(%s::text[])))')
    assert params == [SUBJECT.p, "Patient", ["1"]]


def test_identifier_modifier_is_a_token_search() -> None:
    key = identifier_param_key("Observation", "subject")
    value = TOKEN.parse(key, None, "urn:mrn|7", ParseContext())
    text, params = Compiler().clause(
        Clause("subject:identifier", (Criterion(SUBJECT, "identifier", (value,)),)), RES)
    assert text.as_string(None) == ('EXISTS (SELECT 1 FROM "idx_token" "a1" WHERE'
                                    ' "a1".rid = "res".rid AND "a1"."h_sys_code" = %s)')
    assert params == [h64(key, "urn:mrn", "7")]


def test_chain() -> None:
    clause = Clause("subject._id", (Criterion(PATIENT_ID, None, ("x",)),),
                    (Link(SUBJECT, ("Patient",)),))
    text, params = Compiler().clause(clause, RES)
    # one branch per target type, as a set of rids (planned without statistics too)
    assert text.as_string(None) == (
        '"res".rid IN (SELECT "a1".rid FROM idx_reference "a1" JOIN resource "a2"'
        ' ON "a2".resource_type = "a1".target_type AND "a2".id = "a1".target_id'
        ' WHERE "a1".p = %s AND "a1".target_type = %s AND NOT "a2".deleted'
        ' AND "a2".id = ANY(%s))')
    assert params == [SUBJECT.p, "Patient", ["x"]]


def test_has() -> None:
    clause = HasClause("_has:Observation:subject:_id", "Observation", SUBJECT,
                       Clause("_id", (Criterion(OBSERVATION_ID, None, ("x",)),)))
    text, params = Compiler().clause(clause, RES)
    assert text.as_string(None) == (
        'EXISTS (SELECT 1 FROM idx_reference "a1" JOIN resource "a2" ON "a2".rid = "a1".rid'
        ' WHERE "a1".p = %s AND "a1".target_type = "res".resource_type'
        ' AND "a1".target_id = "res".id AND "a2".id = ANY(%s))')
    assert params == [SUBJECT.p, ["x"]]


def test_has_on_the_source_rows_needs_no_source_row() -> None:
    # A criterion on the source's index rows: they are its current version's, as the
    # reference row is, so the EXISTS stays on index rows (no resource row per source).
    code = SearchParam("code", "token", "Observation", "", "Observation.code")
    value = TOKEN.parse(code.p, None, "http://loinc.org|4548-4", ParseContext())
    clause = HasClause("_has:Observation:subject:code", "Observation", SUBJECT,
                       Clause("code", (Criterion(code, None, (value,)),)))
    text, params = Compiler().clause(clause, RES)
    assert text.as_string(None) == (
        'EXISTS (SELECT 1 FROM idx_reference "a1" WHERE "a1".p = %s'
        ' AND "a1".target_type = "res".resource_type AND "a1".target_id = "res".id'
        ' AND EXISTS (SELECT 1 FROM "idx_token" "a3" WHERE "a3".rid = "a1".rid AND'
        ' "a3"."h_sys_code" = %s))')
    assert params[0] == SUBJECT.p and len(params) == 2


def test_include_and_revinclude() -> None:
    text, params = include_forward([1, 2], [P], "Patient", 50)
    assert 'JOIN resource r ON r.resource_type = a.target_type AND r.id = a.target_id' in (
        text.as_string(None))
    # the targets made distinct first, then their rows
    assert "(SELECT DISTINCT a.target_type, a.target_id FROM idx_reference a WHERE " \
        "a.rid = ANY(%s) AND a.p = ANY(%s) AND a.target_type = %s) a" in text.as_string(None)
    assert text.as_string(None).endswith("WHERE NOT r.deleted LIMIT %s")
    assert params == [[1, 2], [P], "Patient", 50]
    _, params = include_forward([1], [P], None, 50)
    assert params == [[1], [P], 50]
    text, params = include_reverse([("Patient", "5")], [P], 50)
    assert "JOIN resource r ON r.rid = a.rid" in text.as_string(None)
    assert params == [["Patient"], ["5"], [P], 50]
