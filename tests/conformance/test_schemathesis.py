"""The OpenAPI document against the running server (schemathesis): for examples
generated from every operation of ``/api/openapi.json``, no answer is a 5xx, and every
status code and content type is one the document names.

A server of its own on a scratch database: generated conditional deletes and updates
must not touch the data of the other conformance tests. The budget is small (a few
examples an operation, no shrinking): this is a smoke test of the whole surface, run
on every change; the hostile suite (tests/conformance/hostile) holds the exact cases.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    status_code_conformance,
)

from tests.conftest import running_server, scratch_database


@pytest.fixture(scope="module")
def api_schema(database_url: str) -> Iterator[schemathesis.BaseSchema]:
    with scratch_database(database_url, "schemathesis") as url, running_server(url) as root:
        schema = schemathesis.openapi.from_url(f"{root}/api/openapi.json")
        yield schema


def test_every_operation_answers_as_documented(api_schema: schemathesis.BaseSchema) -> None:
    """Each operation's generated cases (schemathesis' lazy pytest loader does not run
    under pytest 9, so the operations are driven through their Hypothesis strategies)."""
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=4, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def answers_as_documented(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error, status_code_conformance,
                                           content_type_conformance], timeout=30)

        try:
            answers_as_documented()
        except Exception as exc:  # every operation is tried; all failures reported
            failures.append(f"{operation.label}: {exc}"[:2000])
    assert not failures, "\n\n".join(failures)
