"""String index rows and string search values parsed, without a database."""

from __future__ import annotations

import pytest

from fhir_server.errors import BadRequest
from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.string import STRING, StringValue, as_family, clip, family_param, fold

CTX = IndexContext()
PARSE = ParseContext()


def parse(modifier: str | None, raw: str) -> StringValue:
    """One string search value."""
    return STRING.parse(6, modifier, raw, PARSE)


def test_columns_and_modifiers() -> None:
    assert [c for c, _ in STRING.columns] == ["norm", "exact"]
    assert STRING.name == "string"
    assert frozenset({"exact", "contains", "text"}) == STRING.modifiers


def test_rows_of_a_human_name() -> None:
    name = {"use": "official", "family": "Müller-Lüdenscheidt", "given": ["Zoë", "Ann"],
            "prefix": ["Dr."], "suffix": ["PhD"], "text": "Dr. Zoë Ann Müller",
            "period": {"start": "2020"}}
    assert STRING.rows(1, [Node(name, "HumanName")], CTX) == [
        (1, "muller ludenscheidt", "Müller-Lüdenscheidt"),
        (1, "zoe", "Zoë"), (1, "ann", "Ann"), (1, "dr", "Dr."), (1, "phd", "PhD"),
        (1, "dr zoe ann muller", "Dr. Zoë Ann Müller"),
        (1, "ludenscheidt", ""),  # a part of the family name (no exact: not sorted by)
    ]


def test_family_name_parts_have_rows_of_their_own() -> None:
    # search.html 3.1.1.4.8: "van den Heuvel" is found by "Heuvel" (and "den").
    rows = STRING.rows(1, [Node({"family": "van den Heuvel", "given": ["Jan Piet"]},
                                "HumanName")], CTX)
    assert rows == [(1, "van den heuvel", "van den Heuvel"), (1, "jan piet", "Jan Piet"),
                    (1, "den heuvel", ""), (1, "heuvel", "")]
    # given names and other strings keep one row
    assert STRING.rows(1, [Node("van den Heuvel", "string")], CTX) == [
        (1, "van den heuvel", "van den Heuvel")]
    assert as_family([Node("van Gogh", "string")]) == [
        Node({"family": "van Gogh"}, "HumanName")]
    assert family_param("Patient.name.family | Practitioner.name.family")
    assert not family_param("Patient.name") and not family_param(None)


def test_punctuation_is_read_as_blanks() -> None:
    assert fold("Burgers UMC Ear,Nose,Throat unit") == "burgers umc ear nose throat unit"
    assert fold("O'Brien-Smith_(Jr.)") == "o brien smith jr"
    assert parse(None, "Burgers UMC Ear Nose") == StringValue("prefix", "burgers umc ear nose")
    assert parse(None, "ear,nose").text == "ear nose"
    assert parse("exact", "Ear,Nose") == StringValue("exact", "Ear,Nose")  # as written
    with pytest.raises(BadRequest, match="punctuation"):
        parse(None, "?!")


def test_rows_of_an_address() -> None:
    address = {"use": "home", "type": "postal", "line": ["1 Main St", "Apt 2"],
               "city": "Zürich", "district": "ZH", "state": "ZH", "postalCode": "8001",
               "country": "CH", "text": "1 Main St, 8001 Zürich"}
    assert [r[2] for r in STRING.rows(1, [Node(address, "Address")], CTX)] == [
        "1 Main St", "Apt 2", "Zürich", "ZH", "8001", "CH", "1 Main St, 8001 Zürich"]


def test_rows_of_other_types() -> None:
    concept = {"coding": [{"system": "http://loinc.org", "code": "1-8", "display": "Héllo"}],
               "text": "Greeting"}
    identifier = {"system": "urn:x", "value": "AB-12", "type": {"text": "MRN"}}
    nodes = [Node("plain", "string"), Node("**mark**", "markdown"),
             Node(concept, "CodeableConcept"), Node(identifier, "Identifier"),
             Node("   ", "string"), Node("plain", "string"), Node(3, "integer")]
    assert [r[1:] for r in STRING.rows(1, nodes, CTX)] == [
        ("plain", "plain"), ("mark", "**mark**"), ("hello", "Héllo"),
        ("greeting", "Greeting"), ("ab 12", "AB-12")]


def test_long_text_is_clipped_on_a_character_boundary() -> None:
    text = "é" * 1500  # 3000 bytes
    assert len(clip(text).encode()) == 2000
    assert clip("short") == "short"
    assert len(clip("x" + "é" * 1500).encode()) == 1999


def test_default_is_a_folded_prefix() -> None:
    assert parse(None, "Zoë") == StringValue("prefix", "zoe")
    assert parse(None, "gt2020") == StringValue("prefix", "gt2020")  # no prefixes on strings
    assert parse(None, "100%") == StringValue("prefix", "100")  # punctuation is a blank


def test_exact_and_contains() -> None:
    assert parse("exact", "Zoë") == StringValue("exact", "Zoë")
    assert parse("contains", "Ë_xyz") == StringValue("contains", "e xyz")


@pytest.mark.parametrize("value", ["ab", "a b", "Ë_x", "1-2"])
def test_contains_needs_a_word_the_trigram_index_has(value: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse("contains", value)
    assert caught.value.code == "too-costly"


def test_search_escapes_are_removed() -> None:
    assert parse("exact", r"a\|b\$c\\d") == StringValue("exact", "a|b$c\\d")


def test_text_matches_word_starts() -> None:
    assert parse("text", "Quiñones  carr") == StringValue(
        "text", "quinones carr", ("quinones", "carr"))


def test_search_values_are_clipped_like_rows() -> None:
    long_text = "Ærlig " + "x" * 5000
    assert parse(None, long_text).text == clip("ærlig " + "x" * 5000)
    assert parse("exact", long_text).text == clip(long_text)


@pytest.mark.parametrize("modifier", [None, "contains", "text"])
@pytest.mark.parametrize("raw", ["", "   "])
def test_blank_values_are_rejected(modifier: str | None, raw: str) -> None:
    # An empty parameter (name=) is ignored by the request parser; a blank value inside
    # an OR list (name=a,) is a 400, as for every other parameter type.
    with pytest.raises(BadRequest, match="blanks"):
        parse(modifier, raw)


def test_exact_takes_a_blank_value() -> None:
    assert parse("exact", "") == StringValue("exact", "")


@pytest.mark.parametrize("modifier", ["below", "missingx", "not", "in"])
def test_unknown_modifiers_are_rejected(modifier: str) -> None:
    with pytest.raises(BadRequest, match=f":{modifier}"):
        parse(modifier, "x")
