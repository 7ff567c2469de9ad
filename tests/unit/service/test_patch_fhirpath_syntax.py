"""The FHIRPath subset of patch paths: the tree the parser builds and its syntax errors."""

from __future__ import annotations

import pytest

from fhir_server.errors import BadRequest
from fhir_server.service.patch_fhirpath_syntax import (
    Binary,
    Call,
    Index,
    Literal,
    Member,
    PathExpr,
    parse_path,
)


def _path(*names: str) -> PathExpr:
    return PathExpr(tuple(Member(name) for name in names))


def test_members_indexers_and_functions() -> None:
    assert parse_path("Patient.name[0].given.first()") == PathExpr((
        Member("Patient"), Member("name"), Index(0), Member("given"), Call("first", ())))
    assert parse_path("`Patient`.name") == _path("Patient", "name")


def test_and_binds_tighter_than_or() -> None:
    where = parse_path("telecom.where(system = 'phone' or system = 'fax' and use != 'x')")
    assert where.steps[1] == Call("where", (Binary(
        "or", Binary("=", _path("system"), Literal("phone")),
        Binary("and", Binary("=", _path("system"), Literal("fax")),
               Binary("!=", _path("use"), Literal("x")))),))


def test_parentheses_group() -> None:
    where = parse_path("telecom.where((system ~ 'a' or use !~ 'b') and value = 'c')")
    criteria = where.steps[1]
    assert isinstance(criteria, Call) and isinstance(criteria.args[0], Binary)
    assert criteria.args[0].op == "and" and criteria.args[0].left == Binary(
        "or", Binary("~", _path("system"), Literal("a")),
        Binary("!~", _path("use"), Literal("b")))


@pytest.mark.parametrize(("literal", "value"), [
    ("'it\\'s'", "it's"), ("'caf\\u00e9'", "café"), ("'a\\nb'", "a\nb"), ("5", 5),
    ("1.5", 1.5), ("true", True), ("false", False), ("@1974-12-25", "1974-12-25"),
    ("@2015-02-04T14:34:28.5+09:00", "2015-02-04T14:34:28.5+09:00"), ("@T14:34", "T14:34"),
    ("'\\`\\/\\\\'", "`/\\"),
])
def test_literals(literal: str, value: object) -> None:
    where = parse_path(f"name.where($this = {literal})")
    assert where.steps[1] == Call("where", (Binary("=", PathExpr(()), Literal(value)),))


def test_delimited_names_and_comments() -> None:
    assert parse_path("`Patient`.`a\\`b` /* c */ // d") == _path("Patient", "a`b")
    # a delimited keyword is a name, not the operator
    where = parse_path("name.where(`and` = 'x')")
    assert where.steps[1] == Call("where", (Binary("=", _path("and"), Literal("x")),))


def test_type_arguments_are_paths() -> None:
    assert parse_path("deceased.ofType(FHIR.boolean)").steps[1] == Call(
        "ofType", (_path("FHIR", "boolean"),))


@pytest.mark.parametrize("path", [
    "Patient.name[", "Patient..name", "Patient.name.resolve()", "Patient.name.where(",
    "Patient.name.where(use = 'x)", "Patient.name[a]", "Patient.name[1.5]", "Patient.name#",
    "Patient.name.first(1)", "Patient.name.where()", "Patient.name = 'x'", "'Patient'",
    "Patient.name.descendants()", "", "$this.", "name.where($this = @20)",
    "name.where($index = 0)", "name.where(%resource = 'x')", "Patient.$this", "a\u00a0b",
    "Patient.name.where(use = 'x') | Patient.contact",
])
def test_bad_paths_are_bad_requests(path: str) -> None:
    with pytest.raises(BadRequest, match="Invalid FHIRPath"):
        parse_path(path)
