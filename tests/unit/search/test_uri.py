"""URI index: rows (canonical versions) and the SQL of exact, :below and :above."""

from __future__ import annotations

import pytest
from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Node, SearchContext
from fhir_server.search.uri import URI, segment_prefixes, split_canonical

P = 7
A = sql.Identifier("a")
CTX = SearchContext()


def render(modifier: str | None, values: list[str]) -> tuple[str, list[object]]:
    """The predicate as SQL text and its parameters."""
    fragment, params = URI.predicate(P, modifier, values, A, CTX)
    return fragment.as_string(None), params


def test_rows() -> None:
    nodes = [Node("http://a.org/vs", "uri"), Node("http://a.org/q|2.0", "canonical"),
             Node("urn:oid:1.2.3", "oid"), Node("", "uri"), Node({"x": 1}, "Reference"),
             Node("http://a.org/vs", "url")]
    assert URI.rows(P, nodes, CTX) == [(P, "http://a.org/vs"), (P, "http://a.org/q|2.0"),
                                       (P, "http://a.org/q"), (P, "urn:oid:1.2.3")]
    assert [c for c, _ in URI.columns] == ["uri"]


def test_split_canonical() -> None:
    assert split_canonical("http://x|1.0") == ("http://x", "1.0")
    assert split_canonical("http://x") == ("http://x", None)
    assert split_canonical("http://x|") == ("http://x|", None)


def test_segment_prefixes() -> None:
    assert segment_prefixes("http://a.org/fhir/x") == [
        "http://a.org", "http://a.org/", "http://a.org/fhir", "http://a.org/fhir/",
        "http://a.org/fhir/x"]
    assert segment_prefixes("http://a.org/") == ["http://a.org", "http://a.org/"]


def test_exact() -> None:
    assert render(None, ["http://a"]) == ('"a"."p" = %s AND "a"."uri" = %s', [P, "http://a"])
    assert render(None, ["http://a", r"http://b\|1"]) == (
        '"a"."p" = %s AND "a"."uri" = ANY(%s::text[])', [P, ["http://a", "http://b|1"]])


def test_below() -> None:
    text, params = render("below", ["http://a.org/fhir"])
    assert text == ('"a"."p" = %s AND ("a"."uri" = ANY(%s::text[]) OR "a"."uri" LIKE %s'
                    ' OR "a"."uri" LIKE %s)')
    assert params == [P, ["http://a.org/fhir"], "http://a.org/fhir/%", "http://a.org/fhir|%"]
    _, params = render("below", ["http://a.org/q|1"])
    assert params == [P, ["http://a.org/q|1"], "http://a.org/q|1.%"]
    text, params = render("below", ["http://a/_x", "http://b/"])
    assert text.endswith('"a"."uri" LIKE ANY(%s::text[]))')
    assert params[-1] == ["http://a/\\_x/%", "http://a/\\_x|%", "http://b/%", "http://b/|%"]


def test_above() -> None:
    text, params = render("above", ["http://a.org/fhir/ValueSet/1"])
    assert text == '"a"."p" = %s AND "a"."uri" = ANY(%s::text[])'
    assert params == [P, segment_prefixes("http://a.org/fhir/ValueSet/1")]
    _, params = render("above", ["http://a.org/q|2.0"])
    assert params[1] == [*segment_prefixes("http://a.org/q"), "http://a.org/q|2.0"]


@pytest.mark.parametrize(("modifier", "value"), [
    ("below", "urn:oid:1.2"), ("above", "urn:uuid:abc"), ("contains", "http://a"),
    ("not", "http://a"), (None, ""),
])
def test_rejects(modifier: str | None, value: str) -> None:
    with pytest.raises(BadRequest):
        render(modifier, [value])


def test_sort_key() -> None:
    assert URI.sort_key(A, True).as_string(None) == 'max("a"."uri")'
