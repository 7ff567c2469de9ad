"""Full-text search without a database: what text is extracted, the index row, and how
``_text``/``_content``/``_query`` are parsed (and refused)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.definitions import Definitions
from fhir_server.errors import BadRequest
from fhir_server.paths import data_dir
from fhir_server.search.fhirpath import Extractor
from fhir_server.search.index import IndexBuilder
from fhir_server.search.parse import Parser
from fhir_server.search.registry import Registry
from fhir_server.search.request import Clause, HasClause
from fhir_server.search.text import (
    MAX_CHARS,
    TextQuery,
    content_text,
    narrative_text,
    parse_text_values,
    text_row,
    valid_config_name,
)

DIV = ('<div xmlns="http://www.w3.org/1999/xhtml"><!-- generated --><table><tr>'
       '<td>Name</td><td>Peter James <b>Chalmers</b> (&quot;Jim&quot;)</td></tr>'
       '<tr><td>Born</td><td>25&nbsp;Dec&#160;1974</td></tr></table></div>')
PATIENT: dict[str, Any] = {
    "resourceType": "Patient", "id": "example",
    "meta": {"versionId": "1", "tag": [{"system": "urn:t", "code": "x", "display": "Tagged"}]},
    "text": {"status": "generated", "div": DIV},
    "identifier": [{"use": "usual", "system": "urn:oid:1.2.36.146.595.217.0.1",
                    "value": "12345", "assigner": {"display": "Acme Healthcare"}}],
    "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
    "gender": "male", "birthDate": "1974-12-25",
    "extension": [{"url": "http://example.org/nick", "valueString": "Jimbo"}],
    "photo": [{"contentType": "image/png", "data": "iVBORw0KGgo=", "title": "Portrait"}],
    "managingOrganization": {"reference": "Organization/1", "display": "Gastro Clinic"},
    "contained": [{"resourceType": "Organization", "id": "o",
                   "text": {"status": "generated", "div": "<div>inner narrative</div>"},
                   "name": "Contained Org"}],
}


@pytest.fixture(scope="module")
def registry(definitions: Definitions, extractor: Extractor) -> Registry:
    return Registry.load(data_dir("search"), definitions.resource_types, extractor)


@pytest.fixture(scope="module")
def parser(registry: Registry) -> Parser:
    return Parser(registry, "simple")


def test_narrative_loses_markup_comments_and_entities() -> None:
    assert narrative_text(PATIENT) == 'Name Peter James Chalmers ("Jim") Born 25 Dec 1974'


@pytest.mark.parametrize("resource", [
    {"resourceType": "Patient"}, {"text": {"status": "empty"}}, {"text": "odd"},
    {"text": {"div": "<div>  </div>"}}, {"text": {"div": 5}},
])
def test_no_narrative(resource: dict[str, Any]) -> None:
    assert narrative_text(resource) is None


def test_content_keeps_what_people_read() -> None:
    lines = (content_text(PATIENT) or "").split("\n")
    assert lines == ["12345", "Acme Healthcare", "Chalmers", "Peter", "James", "Jimbo",
                     "Portrait", "Gastro Clinic", "Contained Org"]


def test_content_skips_machinery() -> None:
    text = content_text(PATIENT) or ""
    for absent in ("example", "Tagged", "male", "official", "usual", "1974-12-25",
                   "urn:oid", "http://", "Organization/1", "image/png", "iVBOR",
                   "inner narrative", "Peter James Chalmers", "Patient"):
        assert absent not in text, absent
    assert content_text({"resourceType": "Patient", "id": "x", "gender": "male"}) is None


def test_long_text_is_cut() -> None:
    big = {"resourceType": "Basic", "text": {"div": "<div>" + "word " * 100_000 + "</div>"},
           "extension": [{"url": "u", "valueString": "x" * 1000}] * 400}
    assert len(narrative_text(big) or "") == MAX_CHARS
    assert len(content_text(big) or "") <= MAX_CHARS


def test_text_row() -> None:
    row = text_row(PATIENT, "english")
    assert row is not None
    assert row["config"] == "english"
    assert row["narrative_source"].startswith("Name Peter")
    assert row["content_source"].startswith("12345\n")
    assert text_row({"resourceType": "Patient", "id": "x"}, "english") is None
    assert text_row({"resourceType": "Patient", "name": [{"text": "A"}]}, "simple") == {
        "config": "simple", "narrative_source": None, "content_source": "A"}


def test_index_builder_adds_the_text_row(registry: Registry) -> None:
    rows = IndexBuilder(registry, (), "german").rows(PATIENT)
    assert rows["text"] == [text_row(PATIENT, "german")]
    assert "string" in rows  # the other rows are still there
    assert "text" not in IndexBuilder(registry).rows({"resourceType": "Patient", "id": "x"})


@pytest.mark.parametrize("name, ok", [
    ("english", True), ("simple", True), ("pg_catalog.german", True), ("my_cfg2", True),
    ("", False), ("english; drop table x", False), ("2x", False), ("a.b.c", False),
    ("'english'", False),
])
def test_config_names(name: str, ok: bool) -> None:
    assert valid_config_name(name) is ok


def test_parse_text_values() -> None:
    assert parse_text_values("_text", None, ["peter", '"a b" -c'], "simple") == (
        TextQuery("simple", "peter"), TextQuery("simple", '"a b" -c'))
    with pytest.raises(BadRequest, match=":exact"):
        parse_text_values("_text", "exact", ["peter"], "simple")
    with pytest.raises(BadRequest, match="word"):
        parse_text_values("_content", None, ["--"], "simple")


def test_parser_or_values_and_repeats(parser: Parser) -> None:
    request = parser.parse(["Patient"], [("_text", "peter,jim"), ("_content", "a\\,b"),
                                         ("_content", "c"), ("family", "chalmers")], True)
    texts = [c for c in request.clauses if isinstance(c, Clause) and c.name != "family"]
    assert [c.criteria[0].values for c in texts] == [
        (TextQuery("simple", "peter"), TextQuery("simple", "jim")),
        (TextQuery("simple", "a,b"),), (TextQuery("simple", "c"),)]
    assert [c.criteria[0].modifier for c in texts] == [None, None, None]
    assert [n for n, _ in request.applied] == ["_text", "_content", "_content", "family"]
    assert request.ignored == []


def test_parser_missing(parser: Parser) -> None:
    request = parser.parse(["Patient"], [("_text:missing", "true")], True)
    clause = request.clauses[0]
    assert isinstance(clause, Clause)
    assert (clause.criteria[0].modifier, clause.criteria[0].values) == ("missing", (True,))


def test_parser_chain_has_and_system_search(parser: Parser) -> None:
    chained = parser.parse(["Observation"], [("subject:Patient._text", "peter")], True)
    clause = chained.clauses[0]
    assert isinstance(clause, Clause) and clause.param.code == "_text" and clause.chain
    has = parser.parse(["Patient"], [("_has:Observation:subject:_content", "x")], True)
    assert isinstance(has.clauses[0], HasClause)
    # one clause for every type: idx_text does not depend on it
    system = parser.parse(["Patient", "Observation"], [("_text", "x")], True)
    assert len(system.clauses) == 1 and isinstance(system.clauses[0], Clause)
    assert system.clauses[0].criteria[0].values == (TextQuery("simple", "x"),)


@pytest.mark.parametrize("pairs, message", [
    ([("_query", "everything")], "_query"),
    ([("_query:x", "y")], "_query"),
    ([("_text:exact", "peter")], "_text"),
    ([("_content:not", "peter")], ":not"),
    ([("_content:text", "peter")], ":text"),
    ([("_text", "***")], "word"),
    ([("_content:missing", "1")], "true or false"),
])
def test_parser_refuses(parser: Parser, pairs: list[tuple[str, str]], message: str) -> None:
    for strict in (True, False):  # refused even when unknown parameters are ignored
        with pytest.raises(BadRequest, match=message):
            parser.parse(["Patient"], pairs, strict)


def test_sorting_by_text_is_refused(parser: Parser) -> None:
    with pytest.raises(BadRequest, match="sort"):
        parser.parse(["Patient"], [("_sort", "_content")], True)
