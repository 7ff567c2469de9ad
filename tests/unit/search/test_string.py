"""String index rows and predicates, without a database."""

from __future__ import annotations

import pytest
from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Node, SearchContext
from fhir_server.search.string import STRING, clip, like_escape

CTX = SearchContext()
A = sql.Identifier("a")


def test_rows_of_a_human_name() -> None:
    name = {"use": "official", "family": "Müller-Lüdenscheidt", "given": ["Zoë", "Ann"],
            "prefix": ["Dr."], "suffix": ["PhD"], "text": "Dr. Zoë Ann Müller",
            "period": {"start": "2020"}}
    assert STRING.rows(1, [Node(name, "HumanName")], CTX) == [
        (1, "muller-ludenscheidt", "Müller-Lüdenscheidt"),
        (1, "zoe", "Zoë"), (1, "ann", "Ann"), (1, "dr.", "Dr."), (1, "phd", "PhD"),
        (1, "dr. zoe ann muller", "Dr. Zoë Ann Müller"),
    ]


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
        ("plain", "plain"), ("**mark**", "**mark**"), ("hello", "Héllo"),
        ("greeting", "Greeting"), ("ab-12", "AB-12")]


def test_long_text_is_clipped_on_a_character_boundary() -> None:
    text = "é" * 1500  # 3000 bytes
    assert len(clip(text).encode()) == 2000
    assert clip("short") == "short"
    assert len(clip("x" + "é" * 1500).encode()) == 1999


def test_like_escape() -> None:
    assert like_escape(r"50%_a\b") == r"50\%\_a\\b"


def _pred(modifier: str | None, *values: str) -> tuple[str, list[object]]:
    query, params = STRING.predicate(6, modifier, list(values), A, CTX)
    return query.as_string(None), params


def test_default_is_a_folded_prefix() -> None:
    text, params = _pred(None, "Zoë", "gt2020", "100%")
    assert params == [6, "zoe%", "gt2020%", "100\\%%"]
    assert text == '("a".p = %s AND ("a".norm LIKE %s OR "a".norm LIKE %s OR "a".norm LIKE %s))'


def test_exact_and_contains() -> None:
    assert _pred("exact", "Zoë")[1] == [6, "Zoë"]
    assert '"a".exact = %s' in _pred("exact", "Zoë")[0]
    assert _pred("contains", "Ë_")[1] == [6, "%e\\_%"]


def test_search_escapes_are_removed() -> None:
    assert _pred("exact", r"a\|b\$c\\d")[1] == [6, "a|b$c\\d"]


def test_text_matches_word_starts() -> None:
    text, params = _pred("text", "Quiñones  carr")
    assert params == [6, "quinones%", "% quinones%", "carr%", "% carr%"]
    assert text.count(" AND ") == 2


@pytest.mark.parametrize("modifier", ["below", "missingx", "not", "in"])
def test_unknown_modifiers_are_rejected(modifier: str) -> None:
    with pytest.raises(BadRequest, match=f":{modifier}"):
        STRING.predicate(1, modifier, ["x"], A, CTX)


def test_sort_key() -> None:
    assert STRING.sort_key(A, False).as_string(None) == 'min("a".norm)'
    assert STRING.sort_key(A, True).as_string(None) == 'max("a".norm)'
