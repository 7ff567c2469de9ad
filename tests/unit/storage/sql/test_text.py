"""The SQL of ``_text``/``_content`` on idx_text (no database)."""

from __future__ import annotations

from psycopg import sql

from fhir_server.search.registry import SearchParam
from fhir_server.search.request import Clause, Criterion, SearchRequest
from fhir_server.search.text import TextQuery
from fhir_server.storage.sql.compile import Compiler
from fhir_server.storage.sql.text import text_condition, tsquery

R = sql.Identifier("r")
A = sql.Identifier("a")


def _text(fragment: tuple[sql.Composable, list[object]]) -> tuple[str, list[object]]:
    return fragment[0].as_string(None), fragment[1]


def test_or_values_are_one_tsquery() -> None:
    text, params = _text(tsquery([TextQuery("english", "peter"),
                                  TextQuery("english", '"a b" -c')]))
    assert text == ("(websearch_to_tsquery(%s::regconfig, %s)"
                    " || websearch_to_tsquery(%s::regconfig, %s))")
    assert params == ["english", "peter", "english", '"a b" -c']


def test_narrative_and_content_columns() -> None:
    text, params = _text(text_condition("_text", None, [TextQuery("simple", "x")], R, A))
    assert text == ('EXISTS (SELECT 1 FROM "idx_text" "a" WHERE "a".rid = "r".rid'
                    ' AND "a"."narrative" @@ (websearch_to_tsquery(%s::regconfig, %s)))')
    assert params == ["simple", "x"]
    text, _ = _text(text_condition("_content", None, [TextQuery("simple", "x")], R, A))
    assert '"a"."content" @@' in text


def test_missing() -> None:
    assert _text(text_condition("_text", "missing", [True], R, A)) == (
        """NOT ("r".content -> 'text' -> 'div') IS NOT NULL""", [])
    assert _text(text_condition("_text", "missing", [False], R, A)) == (
        """("r".content -> 'text' -> 'div') IS NOT NULL""", [])
    assert _text(text_condition("_content", "missing", [True], R, A)) == ("false", [])
    assert _text(text_condition("_content", "missing", [False], R, A)) == ("true", [])


def test_compiled_in_a_search() -> None:
    param = SearchParam("_content", "string", "Patient",
                        "http://hl7.org/fhir/SearchParameter/Resource-content", None)
    clause = Clause("_content", (Criterion(param, None, (TextQuery("english", "peter"),)),))
    query = Compiler().compile(SearchRequest(("Patient",), [clause]))
    text, params = _text(query.where)
    assert 'FROM "idx_text" "a1" WHERE "a1".rid = "r".rid AND "a1"."content" @@' in text
    assert params == ["Patient", "english", "peter"]
