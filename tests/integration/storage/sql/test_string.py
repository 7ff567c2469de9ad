"""String predicates run in PostgreSQL against rows written through fhir_write_index."""

from __future__ import annotations

import random
import unicodedata
from typing import Any

import psycopg
import pytest
from psycopg import sql

from fhir_server.errors import BadRequest
from fhir_server.search.base import Node, ParseContext
from fhir_server.search.string import CONTAINS_MIN, STRING
from fhir_server.storage.sql.string import STRING as STRING_SQL
from tests.integration.storage.sql.scratch import Param, scratch_fixture

CTX = ParseContext()
P = 717171


db = scratch_fixture()
PARAM = Param(P, CTX)
load, matching = PARAM.load, PARAM.matching


NAMES: dict[int, Node] = {
    1: Node({"family": "Zoë", "given": ["Anna"]}, "HumanName"),
    2: Node({"family": "Zoellner", "given": ["Eve"]}, "HumanName"),
    3: Node({"family": "Carreño Quiñones", "given": ["Evelyn"]}, "HumanName"),
    4: Node({"family": "Séverine", "given": ["Marie-Zoé"], "prefix": ["Dr."]}, "HumanName"),
    5: Node({"family": "EVE", "text": "Mr. EVE Smith"}, "HumanName"),
    6: Node({"line": ["100% Main_St"], "city": "Zürich", "postalCode": "8001"}, "Address"),
    7: Node("gt2020 is not a prefix", "string"),
    8: Node("back\\slash", "string"),
    9: Node({"family": "eve", "given": ["Ève"]}, "HumanName"),
    10: Node("Ǆemal ﬁne", "string"),  # compatibility characters fold too
}


@pytest.fixture(scope="module")
def names(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    load(db, STRING, {rid: [node] for rid, node in NAMES.items()})
    return db


@pytest.mark.parametrize(("modifier", "value", "rids"), [
    (None, "zoe", {1, 2}),                       # accents and case fold; prefix match
    (None, "ZOË", {1, 2}),
    (None, "eve", {2, 3, 5, 9}),                 # Eve, Evelyn, EVE, eve/Ève; not Séverine
    (None, "carreno", {3}),
    (None, "quinones", {3}),                     # a later part of a family name
    (None, "severine", {4}),
    (None, "smith", set()),                      # the default matches the start only
    ("text", "quinones", {3}),                   # :text matches any word's start
    ("text", "quin carr", {3}),
    ("text", "smith mr", {5}),
    ("contains", "eve", {2, 3, 4, 5, 9}),        # anywhere: Séverine too
    ("contains", "zoe", {1, 2, 4}),              # Marie-Zoé
    ("exact", "Eve", {2}),                       # case and accents count
    ("exact", "eve", {9}),
    ("exact", "Ève", {9}),
    ("exact", "Zoe", set()),
    (None, "gt2020", {7}),                       # no prefixes on strings
    (None, "100%", {6}),                         # punctuation is a blank
    (None, "100_", {6}),                         # _ too
    (None, "100 main st", {6}),                  # "100% Main_St"
    ("contains", "ain_st", {6}),
    ("contains", "%main", {6}),
    ("exact", "100% Main_St", {6}),
    (None, "zur", {6}),
    (None, "back\\\\s", {8}),                    # a search-escaped backslash (a blank)
    (None, "dzemal", {10}),
    ("contains", "fine", {10}),
    ("exact", "", set()),                        # no stored text is empty
])
def test_examples(names: psycopg.Connection[Any], modifier: str | None, value: str,
                  rids: set[int]) -> None:
    assert matching(names, STRING, [value], modifier) == rids


def test_several_values_are_or_ed(names: psycopg.Connection[Any]) -> None:
    assert matching(names, STRING, ["zoe", "carr"]) == {1, 2, 3}


def test_unknown_modifier_is_rejected(names: psycopg.Connection[Any]) -> None:
    with pytest.raises(BadRequest):
        matching(names, STRING, ["x"], "below")


@pytest.mark.parametrize("value", ["", "  "])
def test_blank_value_is_rejected(names: psycopg.Connection[Any], value: str) -> None:
    # name= (empty) is ignored before the type parses anything; a blank value of an OR
    # list is refused rather than matching every text.
    with pytest.raises(BadRequest, match="blanks"):
        matching(names, STRING, ["zoe", value])


def _fold(text: str) -> str:
    # Independent folding for the expectations: strip marks after compatibility
    # decomposition, case-fold (ß is ss), collapse white space.
    stripped = "".join(c for c in unicodedata.normalize("NFKD", text)
                       if unicodedata.category(c) != "Mn")
    return " ".join(stripped.casefold().split())


WORDS = ["Ann", "Anne", "Änne", "anneliese", "Bob", "Böb", "José", "JOSE", "jo", "Ō", "o",
         "Ørsted", "ß", "Straße", "strasse", "Éclair", "eclairs", "Müller", "mueller", "Nuñez"]


def test_generated_names(db: psycopg.Connection[Any]) -> None:
    rng = random.Random(3)
    texts = {rid: " ".join(rng.sample(WORDS, rng.randrange(1, 3))) for rid in range(100, 400)}
    load(db, STRING, {rid: [Node(t, "string")] for rid, t in texts.items()})
    wrong = []
    for probe in {*WORDS, "an", "AN", "jo", "o", "str", "mu", "e"}:
        want_prefix = {r for r, t in texts.items() if _fold(t).startswith(_fold(probe))}
        want_contains = {r for r, t in texts.items() if _fold(probe) in _fold(t)}
        want_exact = {r for r, t in texts.items() if t == probe}
        modes: list[tuple[str | None, set[int]]] = [(None, want_prefix),
                                                     ("exact", want_exact)]
        if max(len(w) for w in _fold(probe).split()) >= CONTAINS_MIN:  # else a 400
            modes.append(("contains", want_contains))
        for modifier, want in modes:
            got = {r for r in matching(db, STRING, [probe], modifier) if 100 <= r < 400}
            if got != want:
                wrong.append((probe, modifier, sorted(got ^ want)))
    assert not wrong


def test_long_text_is_indexed_and_found(db: psycopg.Connection[Any]) -> None:
    long_text = "Ærlig Åse " + "x" * 5000
    load(db, STRING, {5000: [Node(long_text, "markdown")]})
    assert 5000 in matching(db, STRING, ["ærlig ase"])
    assert 5000 in matching(db, STRING, [long_text], "exact")
    assert 5000 in matching(db, STRING, ["ase xxx"], "contains")


def test_sort_key(names: psycopg.Connection[Any]) -> None:
    alias = sql.Identifier("a")
    query = sql.SQL("SELECT a.rid FROM idx_string a WHERE a.rid IN (1, 2, 3) AND a.p = %s "
                    "GROUP BY a.rid ORDER BY {} COLLATE \"C\"").format(
        STRING_SQL.sort_key(alias, False))
    # min over family and given: anna < carreno quinones < eve
    assert [r[0] for r in names.execute(query, [P])] == [1, 3, 2]


PARTS: dict[int, Node] = {
    600: Node({"family": "van den Heuvel", "given": ["Jan"]}, "HumanName"),
    601: Node({"family": "Heuvelmans"}, "HumanName"),
    602: Node({"family": "Den Uyl"}, "HumanName"),
    603: Node("Burgers UMC Ear,Nose,Throat unit", "string"),
    604: Node("Burgers UMC", "string"),
    605: Node({"family": "Janssen", "given": ["van den Berg"]}, "HumanName"),
}


@pytest.mark.parametrize(("modifier", "value", "rids"), [
    (None, "Heuvel", {600, 601}),                 # a later part of a family name
    (None, "den", {600, 602}),
    (None, "den heuvel", {600}),
    (None, "van den heuvel", {600}),              # the whole value as before
    (None, "van den", {600, 605}),                # "van den Berg" starts with it
    (None, "berg", set()),                        # given names are not split
    ("exact", "Heuvel", set()),                   # :exact is the whole value only
    ("exact", "van den Heuvel", {600}),
    (None, "Burgers UMC Ear Nose", {603}),        # punctuation is ignored
    (None, "burgers umc ear,nose,throat", {603}),
    (None, "Burgers UMC", {603, 604}),
    (None, "nose", set()),                        # only family names have parts
    ("text", "throat ear", {603}),
])
def test_family_parts_and_punctuation(db: psycopg.Connection[Any], modifier: str | None,
                                      value: str, rids: set[int]) -> None:
    load(db, STRING, {rid: [node] for rid, node in PARTS.items()})
    got = {r for r in matching(db, STRING, [value], modifier) if 600 <= r < 700}
    assert got == rids


def test_family_parts_do_not_sort(db: psycopg.Connection[Any]) -> None:
    load(db, STRING, {700: [Node({"family": "Zuid van Aa"}, "HumanName")],
                      701: [Node({"family": "Bakker"}, "HumanName")]})
    alias = sql.Identifier("a")
    query = sql.SQL("SELECT a.rid FROM idx_string a WHERE a.rid IN (700, 701) AND a.p = %s "
                    "GROUP BY a.rid ORDER BY {} COLLATE \"C\"").format(
        STRING_SQL.sort_key(alias, False))
    # by the whole name: "aa" (a part of Zuid van Aa) does not sort it first
    assert [r[0] for r in db.execute(query, [P])] == [701, 700]
