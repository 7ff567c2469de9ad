"""Reference index: parsing, rows, the SQL of each search form, and the join helpers."""

from __future__ import annotations

import pytest
from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Node, SearchContext
from fhir_server.search.hashing import param_key
from fhir_server.search.reference import (
    REFERENCE,
    Target,
    chain_exists,
    has_exists,
    identifier_nodes,
    identifier_param_key,
    include_query,
    parse_canonical,
    parse_reference,
    revinclude_query,
    source_join,
    target_join,
)

P = 11
A = sql.Identifier("a")
BASE = "https://h.example/fhir"
CTX = SearchContext(base_url=BASE + "/")


def render(modifier: str | None, values: list[str], targets: tuple[str, ...] = ()
           ) -> tuple[str, list[object]]:
    """The predicate as SQL text and its parameters."""
    ctx = SearchContext(base_url=BASE, targets=targets)
    fragment, params = REFERENCE.predicate(P, modifier, values, A, ctx)
    return fragment.as_string(None), params


@pytest.mark.parametrize(("ref", "target"), [
    ("Patient/1", Target("Patient", "1")),
    ("Patient/1/_history/3", Target("Patient", "1", "3")),
    (f"{BASE}/Patient/1", Target("Patient", "1")),
    (f"{BASE}/Patient/1/_history/2", Target("Patient", "1", "2")),
    ("http://other/fhir/Patient/1", Target(url="http://other/fhir/Patient/1")),
    ("http://other/fhir/Patient/1/_history/4",
     Target(url="http://other/fhir/Patient/1", version="4")),
    ("urn:uuid:0a1b", Target(url="urn:uuid:0a1b")),
    ("Patient?identifier=x", Target(url="Patient?identifier=x")),
    ("#contained", None),
    ("", None),
])
def test_parse_reference(ref: str, target: Target | None) -> None:
    assert parse_reference(ref, BASE + "/") == target


def test_parse_canonical() -> None:
    assert parse_canonical("http://x.org/Q/a|1.2", BASE) == Target(
        url="http://x.org/Q/a", version="1.2")
    assert parse_canonical(f"{BASE}/Questionnaire/q1|3", BASE) == Target(
        "Questionnaire", "q1", "3", f"{BASE}/Questionnaire/q1")


def test_rows() -> None:
    nodes = [
        Node({"reference": "Patient/1"}, "Reference"),
        Node({"reference": f"{BASE}/Patient/1"}, "Reference"),  # same row as above
        Node({"reference": "#c1"}, "Reference"),
        Node({"identifier": {"system": "s", "value": "v"}}, "Reference"),
        Node({"reference": "Observation/9/_history/2"}, "Reference"),
        Node("http://x.org/Q/a|1.2", "canonical"),
        Node("http://x.org/Q/b", "uri"),
        Node("Patient/2", "string"),  # not a reference type: ignored
    ]
    assert REFERENCE.rows(P, nodes, CTX) == [
        (P, "Patient", "1", None, None),
        (P, "Observation", "9", "2", None),
        (P, None, None, "1.2", "http://x.org/Q/a"),
        (P, None, None, None, "http://x.org/Q/b"),
    ]


def test_identifier_nodes() -> None:
    nodes = [Node({"identifier": {"system": "s", "value": "v"}}, "Reference"),
             Node({"reference": "Patient/1", "identifier": {"value": "w"}}, "Reference"),
             Node({"reference": "Patient/2"}, "Reference"), Node("x", "canonical")]
    assert identifier_nodes(nodes) == [Node({"system": "s", "value": "v"}, "Identifier"),
                                       Node({"value": "w"}, "Identifier")]
    assert identifier_param_key("Observation", "subject") == param_key(
        "Observation", "subject:identifier")


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
    with pytest.raises(BadRequest):
        render("Patient", ["Group/1"])
    with pytest.raises(BadRequest):
        render("Device", ["1"], ("Patient", "Group"))
    with pytest.raises(BadRequest):
        render("Patient", ["http://other/Patient/1"])
    with pytest.raises(BadRequest):
        render("weird", ["1"])


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
    with pytest.raises(BadRequest):
        render("below", ["Location/1"])
    with pytest.raises(BadRequest):
        render("above", ["http://o/Q"])


@pytest.mark.parametrize("value", ["", "Patient/1/x", "a|b|c", "Patient/"])
def test_malformed(value: str) -> None:
    with pytest.raises(BadRequest):
        render(None, [value])


def test_identifier_modifier_is_not_answered_here() -> None:
    with pytest.raises(ValueError, match="identifier_param_key"):
        render("identifier", ["s|v"])


def test_sort_key() -> None:
    assert REFERENCE.sort_key(A, False).as_string(None) == (
        'min(coalesce("a"."target_type" || \'/\' || "a"."target_id", "a"."url"))')


def test_join_helpers() -> None:
    r, t, s = sql.Identifier("r"), sql.Identifier("t"), sql.Identifier("s")
    assert target_join(r, t).as_string(None) == (
        '"t".resource_type = "r".target_type AND "t".id = "r".target_id')
    assert source_join(r, s).as_string(None) == '"s".rid = "r".rid'
    inner = (sql.SQL("{}.id = %s").format(t), ["x"])
    text, params = chain_exists(P, sql.SQL("res"), ["Patient"], r, t, inner)
    assert "JOIN resource \"t\" ON" in text.as_string(None)
    assert params == [P, ["Patient"], "x"]
    text, params = has_exists(P, sql.SQL("res"), r, s, inner)
    assert '"r".target_id = res.id' in text.as_string(None)
    assert params == [P, "x"]
    text, params = include_query([P], [1, 2], "Patient")
    assert text.as_string(None).endswith('AND "t".resource_type = %s')
    assert params == [[1, 2], [P], "Patient"]
    text, params = revinclude_query([P], [5])
    assert params == [[5], [P]]
