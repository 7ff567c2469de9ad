"""How the compiler plans many clauses: the first on their own, the rest as one
INTERSECT; repeated negations as one NOT EXISTS (no database)."""

from __future__ import annotations

import pytest

from fhir_server.definitions import Definitions
from fhir_server.paths import data_dir
from fhir_server.search.fhirpath import Extractor
from fhir_server.search.parse import Parser
from fhir_server.search.registry import Registry
from fhir_server.storage.sql import statements
from fhir_server.storage.sql.compile import OWN_EXISTS, Compiler
from fhir_server.storage.sql.groups import negated, on_rows


@pytest.fixture(scope="module")
def parser() -> Parser:
    definitions = Definitions.load()
    return Parser(Registry.load(data_dir("search"), definitions.resource_types,
                                Extractor(definitions)))


def where(parser: Parser, pairs: list[tuple[str, str]], rtype: str = "Patient") -> str:
    query = Compiler().compile(parser.parse([rtype], pairs, True))
    return query.where[0].as_string(None)


def test_few_clauses_are_an_exists_each(parser: Parser) -> None:
    pairs = [("name", f"n{i}") for i in range(OWN_EXISTS + 1)]
    text = where(parser, pairs)
    assert text.count("EXISTS") == OWN_EXISTS + 1 and "INTERSECT" not in text


def test_past_them_the_rest_are_one_intersect(parser: Parser) -> None:
    pairs = [("name", "a"), ("gender", "male"), ("birthdate", "2000"), ("family", "b"),
             ("given", "c"), ("identifier", "urn:x|1"), ("address-city", "d"),
             ("general-practitioner", "Practitioner/1")]
    text = where(parser, pairs)
    assert text.count("EXISTS") == OWN_EXISTS
    assert text.count(" INTERSECT ") == len(pairs) - OWN_EXISTS - 1
    assert text.count('"r".rid IN (SELECT') == 1
    for table in ("idx_token", "idx_string", "idx_reference"):
        assert f'FROM "{table}"' in text


def test_parameters_line_up_with_the_text(parser: Parser) -> None:
    pairs = [("name", f"n{i}") for i in range(12)] + [("gender:not", "male")]
    stmt, params = statements.page(
        Compiler().compile(parser.parse(["Patient"], pairs, True)), 21, None, False)
    assert stmt.as_string(None).count("%s") == len(params)
    assert [p for p in params if isinstance(p, str) and p.startswith("n")] == [
        f"n{i}%" for i in range(12)]


def test_other_clauses_keep_their_shape(parser: Parser) -> None:
    pairs = [("name", f"n{i}") for i in range(8)] + [
        ("name:missing", "false"), ("_id", "x"), ("general-practitioner.name", "y"),
        ("_lastUpdated", "gt2020")]
    request = parser.parse(["Patient"], pairs, True)
    assert sum(on_rows(c) for c in request.clauses) == 8
    text = where(parser, pairs)
    assert '"r".id = ANY(%s)' in text and '"r".rid IN (SELECT "a' in text  # the chain
    assert text.count(" INTERSECT ") == 8 - OWN_EXISTS - 1


def test_repeated_negations_are_one_not_exists(parser: Parser) -> None:
    pairs = [("gender:not", "male"), ("gender:not", "female"), ("gender:not", "other")]
    assert list(negated(parser.parse(["Patient"], pairs, True).clauses)) == ["gender:not"]
    text = where(parser, pairs)
    assert text.count("NOT EXISTS") == 1 and "ANY(" in text
    assert where(parser, pairs[:1]).count("NOT EXISTS") == 1
