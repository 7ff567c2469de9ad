"""Token index rows from each data type, and token search values parsed (no database)."""

from __future__ import annotations

import pytest

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.hashing import h64
from fhir_server.search.token import (
    TOKEN,
    TokenKey,
    TokenKeys,
    TokenText,
    contact_point_param,
    parse_token,
)

P = 42
CTX = IndexContext()
PARSE = ParseContext()


def rows(*nodes: Node) -> list[tuple[object, ...]]:
    """Token rows of ``nodes`` for parameter P."""
    return TOKEN.rows(P, list(nodes), CTX)


def parse(modifier: str | None, raw: str, ctx: ParseContext = PARSE) -> object:
    """One token search value of parameter P."""
    return TOKEN.parse(P, modifier, raw, ctx)


def test_columns_match_the_migration() -> None:
    assert [c for c, _ in TOKEN.columns] == [
        "h_code", "h_sys_code", "h_sys", "h_type_value", "system", "code", "display"]
    assert TOKEN.name == "token"
    assert frozenset({"not", "text", "in", "not-in", "of-type", "above", "below"}) == \
        TOKEN.modifiers


def test_coding_row_hashes() -> None:
    (row,) = rows(Node({"system": "http://loinc.org", "code": "1-8", "display": "Héllo  X"},
                       "Coding"))
    assert row == (P, h64(P, "1-8"), h64(P, "http://loinc.org", "1-8"),
                   h64(P, "http://loinc.org"), None, "http://loinc.org", "1-8", "hello x")


def test_coding_without_system() -> None:
    (row,) = rows(Node({"code": "x"}, "Coding"))
    assert row[1:5] == (h64(P, "x"), h64(P, "", "x"), None, None)


def test_codeable_concept_each_coding_and_text() -> None:
    cc = {"coding": [{"system": "s", "code": "a"}, {"code": "b", "display": "Bee"}],
          "text": "Çafé"}
    out = rows(Node(cc, "CodeableConcept"))
    assert [(r[5], r[6], r[7]) for r in out] == [("s", "a", None), (None, "b", "bee"),
                                                  (None, None, "cafe")]
    assert out[2][1:5] == (None, None, None, None)


def test_identifier_with_types() -> None:
    ident = {"system": "urn:mrn", "value": "123",
             "type": {"coding": [{"system": "v2", "code": "MR"}, {"code": "XX"}],
                      "text": "Medical record"}}
    out = rows(Node(ident, "Identifier"))
    assert out[0][1:] == (h64(P, "123"), h64(P, "urn:mrn", "123"), h64(P, "urn:mrn"),
                          h64(P, "v2", "MR", "123"), "urn:mrn", "123", "medical record")
    assert out[1] == (P, None, None, None, h64(P, "", "XX", "123"), None, None, None)


def test_contact_point_boolean_and_primitives() -> None:
    out = rows(Node({"system": "phone", "value": "+1 555"}, "ContactPoint"),
               Node(True, "boolean"), Node(False, "boolean"), Node("final", "code"),
               Node("abc", "id"), Node("http://x", "uri"), Node("", "string"))
    assert [(r[5], r[6]) for r in out] == [(None, "+1 555"), (None, "true"), (None, "false"),
                                           (None, "final"), (None, "abc"), (None, "http://x")]
    assert all(r[3] is None for r in out)  # no system: h_sys NULL


def test_contact_point_values_are_lower_cased() -> None:
    # search.html 3.1.1.4.10: e-mail addresses are not case-sensitive.
    (row,) = rows(Node({"system": "email", "value": "John.Doe@Example.ORG"}, "ContactPoint"))
    assert row[1] == h64(P, "john.doe@example.org") and row[6] == "john.doe@example.org"
    folded = ParseContext(fold_case=True)
    assert parse(None, "JOHN.doe@example.org", folded) == TokenKey("code", row[1])
    assert parse("not", "|John.Doe@Example.org", folded) == TokenKey("system_code", row[2])
    # other tokens stay case-sensitive
    assert parse(None, "ABC") == TokenKey("code", h64(P, "ABC"))
    (code,) = rows(Node({"system": "s", "code": "ABC"}, "Coding"))
    assert code[6] == "ABC"


def test_contact_point_parameters() -> None:
    assert contact_point_param("Patient.telecom.where(system='email') | Person.telecom")
    assert contact_point_param("NamingSystem.contact.telecom")
    assert not contact_point_param("Patient.identifier")
    assert not contact_point_param("Patient.extension('http://x/telecomx')")
    assert not contact_point_param(None)


def test_rows_are_deduplicated_and_odd_nodes_skipped() -> None:
    node = Node({"code": "x"}, "Coding")
    assert len(rows(node, node)) == 1
    assert rows(Node({"value": 3}, "Quantity"), Node(None, "code"), Node({}, "Coding")) == []


@pytest.mark.parametrize(("raw", "column", "key"), [
    ("x", "code", h64(P, "x")),
    ("s|x", "system_code", h64(P, "s", "x")),
    ("|x", "system_code", h64(P, "", "x")),
    ("s|", "system", h64(P, "s")),
    (r"a\|b", "code", h64(P, "a|b")),
    (r"s|a\|b", "system_code", h64(P, "s", "a|b")),
    (r"a\\b", "code", h64(P, "a\\b")),
])
def test_parse_token(raw: str, column: str, key: int) -> None:
    assert parse_token(P, raw) == TokenKey(column, key)
    assert parse(None, raw) == TokenKey(column, key)
    assert parse("not", raw) == TokenKey(column, key)  # :not parses as the positive value


@pytest.mark.parametrize("raw", ["", "|", "a|b|c"])
def test_parse_token_rejects(raw: str) -> None:
    with pytest.raises(BadRequest):
        parse_token(P, raw)
    with pytest.raises(BadRequest):
        parse(None, raw)


def test_text_is_the_folded_search_text() -> None:
    assert parse("text", "Héad_%") == TokenText("head_%")
    assert parse("text", r"A\|B  c") == TokenText("a|b c")


def test_of_type() -> None:
    assert parse("of-type", "v2|MR|123") == TokenKey("type_value", h64(P, "v2", "MR", "123"))
    assert parse("of-type", "|MR|123") == TokenKey("type_value", h64(P, "", "MR", "123"))
    for bad in ["MR|123", "v2||123", "v2|MR|", "a|b|c|d"]:
        with pytest.raises(BadRequest, match="of-type"):
            parse("of-type", bad)


def test_in_and_not_in() -> None:
    sets = {"http://vs/1": {("s", "a"), ("s", "b")}, "http://vs/empty": set()}
    ctx = ParseContext(expand_valueset=sets.get)
    value = parse("in", "http://vs/1", ctx)
    assert isinstance(value, TokenKeys)
    # system|code, and |code for elements of type code (indexed without their system)
    assert sorted(value.keys) == sorted([h64(P, "s", "a"), h64(P, "s", "b"),
                                         h64(P, "", "a"), h64(P, "", "b")])
    assert parse("not-in", "http://vs/1", ctx) == value
    assert parse("in", "http://vs/empty", ctx) == TokenKeys(())
    with pytest.raises(BadRequest, match="value set not known"):
        parse("in", "http://vs/unknown", ctx)
    with pytest.raises(BadRequest, match="value set not known"):
        parse("in", "http://vs/1")  # no terminology at all


def test_in_without_a_system_uses_the_empty_system() -> None:
    ctx = ParseContext(expand_valueset={"http://vs": {(None, "a")}}.get)
    assert parse("in", "http://vs", ctx) == TokenKeys((h64(P, "", "a"),))


def test_above_and_below() -> None:
    tree = {("s", "a"): ("a", "a1", "a2")}

    def related(system: str, code: str, modifier: str) -> tuple[str, ...] | None:
        if system != "s":
            return None
        return tree.get((system, code)) if modifier == "below" else (code, "root")

    ctx = ParseContext(subsumption=related)
    below = parse("below", "s|a", ctx)
    assert isinstance(below, TokenKeys)
    assert set(below.keys) == {h64(P, "s", c) for c in ("a", "a1", "a2")} | {
        h64(P, "", c) for c in ("a", "a1", "a2")}
    above = parse("above", "s|a1", ctx)
    assert isinstance(above, TokenKeys) and h64(P, "s", "root") in above.keys
    with pytest.raises(BadRequest, match=r"does not hold the hierarchy of the code system "
                       r"http://snomed\.info/sct"):
        parse("below", "http://snomed.info/sct|123", ctx)
    with pytest.raises(BadRequest, match="needs system\\|code"):
        parse("below", "a", ctx)
    with pytest.raises(BadRequest, match="does not hold the hierarchy"):
        parse("above", "s|a")  # no terminology at all


@pytest.mark.parametrize("modifier", ["exact", "contains", "missingx"])
def test_unsupported_modifiers(modifier: str) -> None:
    with pytest.raises(BadRequest, match=f":{modifier}"):
        parse(modifier, "x")
