"""The size bound kept while a PATCH applies (service/patch_size.py)."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import orjson
import pytest

from fhir_server.errors import FhirError
from fhir_server.service.patch import apply_patch
from fhir_server.service.patch_size import COPY_FLOOR, MAX_OPERATIONS, SizeBudget, json_size

JSON_PATCH = "application/json-patch+json"
FHIR_JSON = "application/fhir+json"
MIB = 1024 * 1024


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p", "name": [{"family": "Smith"}], **extra}


def refusal(resource: dict[str, Any], media: str, body: Any, limit: int) -> FhirError:
    with pytest.raises(FhirError) as caught:
        apply_patch(resource, media, body, max_bytes=limit)
    return caught.value


def operation(op_type: str, path: str, **parts: Any) -> dict[str, Any]:
    part = [{"name": "type", "valueCode": op_type}, {"name": "path", "valueString": path}]
    part += [{"name": k, **v} for k, v in parts.items()]
    return {"name": "operation", "part": part}


def parameters(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def test_the_doubling_copy_is_refused_at_once_with_little_memory() -> None:
    body = [{"op": "copy", "from": "/name", "path": "/name/-"}] * 21
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = refusal(patient(), JSON_PATCH, body, 8 * MIB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 50 * MIB
    assert (error.status, error.code) == (413, "too-costly")
    assert "copies more than" in error.diagnostics


def test_a_copy_past_the_limit_is_refused_before_it_runs() -> None:
    resource = patient(text={"status": "generated", "div": "x" * 40_000})
    body = [{"op": "copy", "from": "/text", "path": "/contained"}]
    error = refusal(resource, JSON_PATCH, body, 60_000)
    assert (error.status, error.code) == (413, "too-long")
    assert "operation #1 (copy '/contained')" in error.diagnostics
    assert "contained" not in resource  # the input is never changed


def test_copies_may_add_up_to_the_resource_s_own_size() -> None:
    resource = patient(text={"status": "generated", "div": "x" * (2 * COPY_FLOOR)})
    body = [{"op": "copy", "from": "/text", "path": "/contained"},
            {"op": "remove", "path": "/contained"}] * 2
    error = refusal(resource, JSON_PATCH, body, 8 * MIB)
    assert (error.status, error.code) == (413, "too-costly")
    assert "operation #3" in error.diagnostics
    # One copy (and its removal) is fine.
    patched = apply_patch(resource, JSON_PATCH, body[:2], max_bytes=8 * MIB)
    assert patched == resource


def test_added_values_count_and_replaced_ones_are_given_back() -> None:
    resource = patient(text={"status": "generated", "div": "a" * 30_000})
    big = {"status": "generated", "div": "b" * 30_000}
    error = refusal(resource, JSON_PATCH, [{"op": "add", "path": "/contact",
                                            "value": [big]}], 50_000)
    assert (error.status, error.code) == (413, "too-long")
    # replacing the text by another as large stays within the limit, however often
    body = [{"op": "replace", "path": "/text", "value": big}] * 5
    assert apply_patch(resource, JSON_PATCH, body, max_bytes=50_000)["text"] == big
    # so does removing it and adding another
    body = [{"op": "remove", "path": "/text"}, {"op": "add", "path": "/text", "value": big}]
    assert apply_patch(resource, JSON_PATCH, body, max_bytes=50_000)["text"] == big


def test_the_bound_never_falls_below_the_real_size() -> None:
    resource = patient(gender="male", birthDate="2000-01-01")
    body = [{"op": "add", "path": "/name/-", "value": {"family": "Jones", "given": ["A"]}},
            {"op": "copy", "from": "/name/0", "path": "/name/0"},
            {"op": "move", "from": "/gender", "path": "/extra"},
            {"op": "replace", "path": "/birthDate", "value": "1999-12-31"},
            {"op": "add", "path": "/name/0/given", "value": ["B", "C"]},
            {"op": "remove", "path": "/name/1"}]
    exact = json_size(apply_patch(resource, JSON_PATCH, body))
    # The smallest limit the patch passes is at least the result's real size.
    assert apply_patch(resource, JSON_PATCH, body, max_bytes=exact + 64)
    with pytest.raises(FhirError):
        apply_patch(resource, JSON_PATCH, body, max_bytes=exact - 1)


def test_fhirpath_patch_values_count_too() -> None:
    resource = patient(text={"status": "generated", "div": "a" * 30_000})
    big = "b" * 30_000
    add = parameters(operation("add", "Patient", name={"valueString": "photo"},
                               value={"part": [{"name": "data",
                                                "valueBase64Binary": big}]}))
    error = refusal(resource, FHIR_JSON, add, 50_000)
    assert (error.status, error.code) == (413, "too-long")
    assert "operation #1 (add Patient.photo)" in error.diagnostics
    insert = parameters(operation("insert", "Patient.name", index={"valueInteger": 0},
                                  value={"valueHumanName": {"family": big}}))
    assert refusal(resource, FHIR_JSON, insert, 50_000).code == "too-long"
    replace = parameters(operation("replace", "Patient.text.div", value={"valueString": big}),
                         operation("replace", "Patient.text.div", value={"valueString": big}))
    patched = apply_patch(resource, FHIR_JSON, replace, max_bytes=50_000)
    assert patched["text"]["div"] == big
    swap = parameters(operation("delete", "Patient.text"),
                      operation("add", "Patient", name={"valueString": "text"},
                                value={"part": [{"name": "status", "valueCode": "generated"},
                                                {"name": "div", "valueString": big}]}))
    assert apply_patch(resource, FHIR_JSON, swap, max_bytes=50_000)["text"]["div"] == big


@pytest.mark.parametrize("media", [JSON_PATCH, FHIR_JSON])
def test_too_many_operations(media: str) -> None:
    count = MAX_OPERATIONS + 1
    body: Any = [{"op": "test", "path": "/id", "value": "p"}] * count
    if media == FHIR_JSON:
        body = parameters(*[operation("delete", "Patient.gender")] * count)
    error = refusal(patient(), media, body, 8 * MIB)
    assert (error.status, error.code) == (413, "too-costly")
    assert f"{count} operations" in error.diagnostics
    assert apply_patch(patient(), media, body[:MAX_OPERATIONS] if media == JSON_PATCH
                       else parameters(*body["parameter"][:MAX_OPERATIONS]),
                       max_bytes=8 * MIB)


def test_without_a_limit_nothing_is_counted() -> None:
    budget = SizeBudget(patient(), None)
    budget.change(10 * MIB, 0, "x")
    budget.copy(10 * MIB, "x")
    assert budget.bound == 10 * MIB


def test_json_size_is_that_of_compact_json() -> None:
    from decimal import Decimal

    value = {"a": [1, "é", None], "b": Decimal("1.50")}
    assert json_size(value) == len(b'{"a":[1,"\xc3\xa9",null],"b":1.50}')
    assert json_size(patient()) == len(orjson.dumps(patient()))
