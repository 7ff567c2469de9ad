"""Reference index: parsing stored references, rows, and reference search values."""

from __future__ import annotations

import pytest

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.hashing import param_key
from fhir_server.search.reference import (
    REFERENCE,
    ReferenceValue,
    Target,
    identifier_nodes,
    identifier_param_key,
    local_part,
    parse_canonical,
    parse_reference,
)

P = 11
BASE = "https://h.example/fhir"
CTX = IndexContext(bases=(BASE,))


def parse(modifier: str | None, raw: str, targets: tuple[str, ...] = ()) -> ReferenceValue:
    """One reference search value on a server at BASE."""
    return REFERENCE.parse(P, modifier, raw, ParseContext(bases=(BASE,), targets=targets))


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
    assert parse_reference(ref, (BASE,)) == target


def test_several_bases() -> None:
    bases = ("http://a.example/fhir", BASE)
    assert parse_reference(f"{BASE}/Patient/1", bases) == Target("Patient", "1")
    assert parse_reference("http://a.example/fhir/Patient/2", bases) == Target("Patient", "2")
    # a base is a whole path segment: .../fhirx is another server
    assert local_part(f"{BASE}x/Patient/1", (BASE,)) is None
    assert local_part(f"{BASE}/Patient/1", ("",)) is None


def test_parse_canonical() -> None:
    assert parse_canonical("http://x.org/Q/a|1.2", (BASE,)) == Target(
        url="http://x.org/Q/a", version="1.2")
    assert parse_canonical(f"{BASE}/Questionnaire/q1|3", (BASE,)) == Target(
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
        (P, None, None, None, "#c1"),  # contained (not in CTX's contained): no type
        (P, "Observation", "9", "2", None),
        (P, None, None, "1.2", "http://x.org/Q/a"),
        (P, None, None, None, "http://x.org/Q/b"),
    ]


def test_contained_reference_rows_carry_the_contained_type() -> None:
    # A "#id" reference is not missing (:missing=false finds it) and chains follow it.
    ctx = IndexContext((), (("newborn", "Patient"), ("m", "Medication")))
    nodes = [Node({"reference": "#newborn"}, "Reference"), Node({"reference": "#m"},
                                                                 "Reference")]
    assert REFERENCE.rows(P, nodes, ctx) == [(P, "Patient", None, None, "#newborn"),
                                             (P, "Medication", None, None, "#m")]
    assert [c for c, _ in REFERENCE.columns] == ["target_type", "target_id", "version", "url"]


def test_identifier_nodes() -> None:
    nodes = [Node({"identifier": {"system": "s", "value": "v"}}, "Reference"),
             Node({"reference": "Patient/1", "identifier": {"value": "w"}}, "Reference"),
             Node({"reference": "Patient/2"}, "Reference"), Node("x", "canonical")]
    assert identifier_nodes(nodes) == [Node({"system": "s", "value": "v"}, "Identifier"),
                                       Node({"value": "w"}, "Identifier")]
    assert identifier_param_key("Observation", "subject") == param_key(
        "Observation", "subject:identifier")


def test_type_and_id() -> None:
    assert parse(None, "Patient/1") == ReferenceValue(typed=(("Patient", "1"),))


def test_id_only_with_one_target_many_or_none() -> None:
    assert parse(None, "1", ("Patient",)) == ReferenceValue(typed=(("Patient", "1"),))
    assert parse(None, "1", ("Patient", "Group")) == ReferenceValue(
        ids=("1",), targets=("Patient", "Group"))
    assert parse(None, "1") == ReferenceValue(ids=("1",))


def test_type_modifier() -> None:
    assert parse("Patient", "Patient/2", ("Patient", "Group")) == ReferenceValue(
        typed=(("Patient", "2"),))
    assert parse("Patient", "1", ("Patient", "Group")) == ReferenceValue(
        typed=(("Patient", "1"),))
    with pytest.raises(BadRequest):
        parse("Patient", "Group/1")
    with pytest.raises(BadRequest):
        parse("Device", "1", ("Patient", "Group"))
    with pytest.raises(BadRequest):
        parse("Patient", "http://other/Patient/1")
    with pytest.raises(BadRequest):
        parse("weird", "1")


def test_versioned() -> None:
    assert parse(None, "Patient/1/_history/2") == ReferenceValue(
        versioned=(("Patient", "1", "2"),))


def test_local_absolute_matches_type_id_and_url() -> None:
    assert parse(None, f"{BASE}/Patient/1") == ReferenceValue(
        typed=(("Patient", "1"),), urls=(f"{BASE}/Patient/1",))
    assert parse(None, f"{BASE}/Patient/1/_history/9") == ReferenceValue(
        versioned=(("Patient", "1", "9"),), urls=(f"{BASE}/Patient/1/_history/9",))
    assert parse(None, f"{BASE}/Questionnaire/q1|3") == ReferenceValue(
        url_versions=((f"{BASE}/Questionnaire/q1", "3"),))
    assert parse(None, f"{BASE}/x") == ReferenceValue(urls=(f"{BASE}/x",))


def test_external_and_canonical() -> None:
    assert parse(None, "http://o/Patient/1") == ReferenceValue(urls=("http://o/Patient/1",))
    assert parse(None, "http://o/Q|2") == ReferenceValue(url_versions=(("http://o/Q", "2"),))
    # an escaped bar is part of the URL, not the version separator
    assert parse(None, r"http://o/Q\|2") == ReferenceValue(urls=("http://o/Q|2",))
    assert parse(None, "http://o/Patient/1/_history/2") == ReferenceValue(
        url_versions=(("http://o/Patient/1", "2"),))


def test_canonical_below() -> None:
    assert parse("below", "http://o/Q|1") == ReferenceValue(below=(("http://o/Q", "1"),))
    assert parse("below", "http://o/R") == ReferenceValue(below=(("http://o/R", None),))
    assert parse("below", "http://o/R|") == ReferenceValue(below=(("http://o/R", None),))
    with pytest.raises(BadRequest):
        parse("below", "Location/1")
    with pytest.raises(BadRequest):
        parse("above", "http://o/Q")


@pytest.mark.parametrize("value", ["", "Patient/1/x", "a|b|c", "Patient/"])
def test_malformed(value: str) -> None:
    with pytest.raises(BadRequest):
        parse(None, value)


def test_identifier_modifier_is_not_answered_here() -> None:
    # :identifier is a token search on identifier_param_key's rows: the request parser
    # parses those values with the token type; the reference type refuses it.
    assert "identifier" in REFERENCE.modifiers
    with pytest.raises(BadRequest, match=":identifier"):
        parse("identifier", "s|v")
