"""URI index rows (canonical versions) and uri search values (exact, :below, :above)."""

from __future__ import annotations

import pytest

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.uri import URI, UriValue, segment_prefixes, split_canonical

P = 7
CTX = IndexContext()
PARSE = ParseContext()


def parse(modifier: str | None, raw: str) -> UriValue:
    """One uri search value."""
    return URI.parse(P, modifier, raw, PARSE)


def test_rows() -> None:
    nodes = [Node("http://a.org/vs", "uri"), Node("http://a.org/q|2.0", "canonical"),
             Node("urn:oid:1.2.3", "oid"), Node("", "uri"), Node({"x": 1}, "Reference"),
             Node("http://a.org/vs", "url")]
    assert URI.rows(P, nodes, CTX) == [(P, "http://a.org/vs"), (P, "http://a.org/q|2.0"),
                                       (P, "http://a.org/q"), (P, "urn:oid:1.2.3")]
    assert [c for c, _ in URI.columns] == ["uri"]
    assert URI.name == "uri" and frozenset({"above", "below"}) == URI.modifiers


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
    assert parse(None, "http://a") == UriValue(("http://a",))
    assert parse(None, r"http://b\|1") == UriValue(("http://b|1",))
    assert parse(None, "urn:oid:1.2") == UriValue(("urn:oid:1.2",))


def test_below() -> None:
    assert parse("below", "http://a.org/fhir") == UriValue(
        ("http://a.org/fhir",), ("http://a.org/fhir/", "http://a.org/fhir|"))
    assert parse("below", "http://b/") == UriValue(("http://b/",), ("http://b/", "http://b/|"))
    assert parse("below", "http://a.org/q|1") == UriValue(("http://a.org/q|1",),
                                                          ("http://a.org/q|1.",))


def test_above() -> None:
    assert parse("above", "http://a.org/fhir/ValueSet/1") == UriValue(
        tuple(segment_prefixes("http://a.org/fhir/ValueSet/1")))
    assert parse("above", "http://a.org/q|2.0") == UriValue(
        (*segment_prefixes("http://a.org/q"), "http://a.org/q|2.0"))


@pytest.mark.parametrize(("modifier", "value"), [
    ("below", "urn:oid:1.2"), ("above", "urn:uuid:abc"), ("contains", "http://a"),
    ("not", "http://a"), (None, ""), ("below", ""),
])
def test_rejects(modifier: str | None, value: str) -> None:
    with pytest.raises(BadRequest):
        parse(modifier, value)
