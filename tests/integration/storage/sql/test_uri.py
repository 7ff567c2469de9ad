"""URI predicates (exact, :below, :above, canonical versions) against real idx_uri rows."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fhir_server.search.base import IndexContext, Node, ParseContext
from fhir_server.search.hashing import param_key
from fhir_server.search.uri import URI
from tests.integration.storage.sql.scratch import load_rows, matching_rids, scratch_fixture

P = param_key("ValueSet", "url")

VALUES: dict[int, Node] = {
    1: Node("http://acme.org/fhir/ValueSet/123", "uri"),
    2: Node("http://acme.org/fhir/ValueSet/1234", "uri"),
    3: Node("http://acme.org/fhir", "uri"),
    4: Node("http://acme.org/fhirx/ValueSet/1", "uri"),
    5: Node("http://acme.org/", "uri"),
    6: Node("urn:oid:1.2.3.4.5", "oid"),
    7: Node("http://acme.org/fhir/ValueSet/123|1.0", "canonical"),
    8: Node("http://acme.org/fhir/ValueSet/123|1.1.2", "canonical"),
    9: Node("http://acme.org/fhir/ValueSet/123|10.0", "canonical"),
    10: Node("http://other.org/fhir/ValueSet/123", "url"),
    11: Node("HTTP://ACME.ORG/fhir/ValueSet/123", "uri"),
    12: Node("http://acme.org/fhir/ValueSet/123/_history/5", "uri"),
}


conn = scratch_fixture()


@pytest.fixture(scope="module")
def db(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """The scratch database with the URI rows written."""
    load_rows(conn, URI, P, IndexContext(), {rid: [node] for rid, node in VALUES.items()})
    return conn


def found(db: psycopg.Connection[Any], modifier: str | None, values: list[str]) -> set[int]:
    """The rids the predicate selects."""
    return matching_rids(db, URI, P, ParseContext(), values, modifier)


VS = "http://acme.org/fhir/ValueSet/123"
CASES: list[tuple[str | None, list[str], set[int]]] = [
    (None, [VS], {1, 7, 8, 9}),  # canonical rows are also stored without their version
    (None, [f"{VS}|1.0"], {7}),
    (None, [f"{VS}\\|1.0"], {7}),  # an escaped bar is the same literal text
    (None, ["urn:oid:1.2.3.4.5"], {6}),
    (None, ["http://acme.org/fhir/valueset/123"], set()),  # case-sensitive
    (None, [VS, "http://other.org/fhir/ValueSet/123"], {1, 7, 8, 9, 10}),
    ("below", ["http://acme.org/fhir/"], {1, 2, 7, 8, 9, 12}),
    ("below", ["http://acme.org/fhir"], {1, 2, 3, 7, 8, 9, 12}),
    ("below", [VS], {1, 7, 8, 9, 12}),
    ("below", [f"{VS}|1"], {7, 8}),
    ("below", [f"{VS}|1.1"], {8}),
    ("below", ["http://acme.org/fhirx", "http://other.org/"], {4, 10}),
    ("below", ["http://nowhere.org"], set()),
    ("above", [f"{VS}/_history/5"], {1, 3, 5, 7, 8, 9, 12}),
    ("above", [VS], {1, 3, 5, 7, 8, 9}),
    ("above", [f"{VS}|1.0"], {1, 3, 5, 7, 8, 9}),
    ("above", ["http://acme.org/fhir/ValueSet/12"], {3, 5}),
    ("above", ["http://other.org/fhir/ValueSet/123/x"], {10}),
]


@pytest.mark.parametrize(("modifier", "values", "expected"), CASES,
                         ids=[f"{c[0]}:{','.join(c[1])}" for c in CASES])
def test_uri_search(db: psycopg.Connection[Any], modifier: str | None, values: list[str],
                    expected: set[int]) -> None:
    assert found(db, modifier, values) == expected


def test_many_values(db: psycopg.Connection[Any]) -> None:
    values = [f"http://x.org/{i}" for i in range(400)] + ["urn:oid:1.2.3.4.5"]
    assert found(db, None, values) == {6}
    below = [f"http://x.org/{i}" for i in range(50)] + ["http://other.org"]
    assert found(db, "below", below) == {10}
