"""The cost check of SearchParameter expressions: bytes, nodes, nesting, costly
functions, and expressions that are no FHIRPath."""

from __future__ import annotations

import time

import pytest

from fhir_server.paths import data_dir
from fhir_server.search.fhirpath_cost import (
    COSTLY_FUNCTIONS,
    MAX_DEPTH,
    ExpressionRefused,
    check,
)
from fhir_server.search.registry import read_search_parameters


def refusal(expression: str, max_bytes: int = 4096, max_nodes: int = 256) -> ExpressionRefused:
    with pytest.raises(ExpressionRefused) as caught:
        check(expression, max_bytes, max_nodes)
    return caught.value


def test_every_shipped_expression_is_within_the_defaults() -> None:
    expressions = [e for p in read_search_parameters(data_dir("search"))
                   for e in [p.get("expression"),
                             *(c.get("expression") for c in p.get("component", []))] if e]
    assert len(expressions) > 1000
    costs = [check(e, 4096, 256) for e in expressions]
    assert max(c.nodes for c in costs) == 215


def test_nodes_are_operators_steps_calls_and_literals() -> None:
    # Patient . name (2: the dot and name; Patient is a step too: 3)
    assert check("Patient.name", 100, 100).nodes == 3
    # a union of two such paths: 3 + 3 + the union
    assert check("Patient.name | Patient.address", 100, 100).nodes == 7
    # where(use = 'official'): the dot, the call, =, use, 'official'
    assert check("Patient.name.where(use = 'official')", 100, 100).nodes == 3 + 5
    # wrappers (parentheses, a term inside an expression) are no nodes
    assert check("(Patient.name)", 100, 100).nodes == 3


def test_the_byte_limit_is_checked_before_parsing() -> None:
    huge = " | ".join(["Patient.name"] * 50_000)  # about 750 kB
    started = time.monotonic()
    refused = refusal(huge)
    assert time.monotonic() - started < 0.1
    assert refused.too_costly
    assert str(refused) == (f"is {len(huge)} bytes long; at most 4096 are allowed "
                            "(FHIRPATH_MAX_BYTES)")
    # bytes, not characters
    assert refusal("Patient.name.where(given = '" + "é" * 40 + "')", max_bytes=80).too_costly


def test_unions_count_towards_the_node_limit() -> None:
    expression = " | ".join(["Patient.name"] * 50)
    assert check(expression, 4096, 256).nodes == 50 * 3 + 49
    refused = refusal(" | ".join(["Patient.name"] * 100))
    assert refused.too_costly
    assert str(refused) == ("has 399 nodes once parsed; at most 256 are allowed "
                            "(FHIRPATH_MAX_NODES)")
    assert check("Patient.name", 4096, 3).nodes == 3
    assert refusal("Patient.name", max_nodes=2).too_costly


@pytest.mark.parametrize("function", sorted(COSTLY_FUNCTIONS))
def test_costly_functions_are_refused(function: str) -> None:
    argument = {"matches": "'(a+)+$'", "replaceMatches": "'(a+)+$', 'b'",
                "aggregate": "$this", "trace": "'x'", "repeat": "item"}.get(function, "")
    refused = refusal(f"Questionnaire.item.{function}({argument})")
    assert refused.too_costly
    assert str(refused) == (f"uses {function}(), which is not allowed in a "
                            "SearchParameter (its cost per write is unbounded)")


def test_deep_nesting_is_refused_without_recursing() -> None:
    assert check("(" * MAX_DEPTH + "Patient.name" + ")" * MAX_DEPTH, 4096, 256).depth \
        == MAX_DEPTH
    deep = MAX_DEPTH + 1
    refused = refusal("(" * deep + "Patient.name" + ")" * deep)
    assert refused.too_costly
    assert str(refused) == f"nests brackets more than {MAX_DEPTH} deep"
    # prefix operators nest without brackets: the parser's recursion is what stops them
    assert str(refusal("-" * 2000 + "1")) == "nests too deeply"


def test_a_long_chain_is_counted_without_recursing() -> None:
    refused = refusal("Patient" + ".a" * 1500)
    assert str(refused).startswith("has 3001 nodes")


@pytest.mark.parametrize(("expression", "message"), [
    ("Patient.name )", "is not FHIRPath (at character 14: extraneous input ')' "
                       "expecting <EOF>)"),
    ("Patient.#", "is not FHIRPath (at character 9: token recognition error at: '#')"),
    ("Patient.name.where(", "is not FHIRPath (at character 20: mismatched input '<EOF>'"),
])
def test_what_is_no_fhirpath_is_refused_as_invalid(expression: str, message: str) -> None:
    refused = refusal(expression)
    assert not refused.too_costly
    assert str(refused).startswith(message)
