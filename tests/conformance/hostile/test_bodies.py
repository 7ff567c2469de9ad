"""Hostile resource bodies on every interaction that takes one: malformed JSON, nesting
past MAX_JSON_DEPTH, NUL characters, lone surrogates, invalid UTF-8, numbers no column
can hold, wrong types. Each is refused with nothing stored, however it arrives: create,
conditional create, update, conditional update, or inside a transaction."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conformance.hostile.conftest import Case, check, params

OBSERVATION = b'"resourceType":"Observation","status":"final","code":{"text":"h"}'

#: (name, resource body, status, issue code)
VECTORS: list[tuple[str, bytes, int, str]] = [
    ("truncated", b'{"resourceType":"Patient","name":[', 400, "invalid"),
    ("empty", b"", 400, "invalid"),
    ("whitespace", b"  \r\n ", 400, "invalid"),
    ("array", b"[]", 400, "invalid"),
    ("string", b'"Patient"', 400, "invalid"),
    ("null", b"null", 400, "invalid"),
    ("number", b"1e999", 400, "invalid"),
    ("trailing-garbage", b'{"resourceType":"Patient"} {}', 400, "invalid"),
    ("single-quotes", b"{'resourceType':'Patient'}", 400, "invalid"),
    ("nan", b'{"resourceType":"Patient","multipleBirthInteger":NaN}', 400, "invalid"),
    ("comment", b'{"resourceType":"Patient" /* x */}', 400, "invalid"),
    ("deep-arrays", b'{"resourceType":"Patient","extension":' + b"[" * 100 + b"]" * 100
     + b"}", 400, "structure"),
    ("deep-objects", b'{"resourceType":"Patient","contact":' + b'{"a":' * 5000 + b"1"
     + b"}" * 5000 + b"}", 400, "structure"),
    ("nul-escaped", b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}', 400,
     "invalid"),
    ("nul-raw", b'{"resourceType":"Patient","name":[{"family":"a\x00b"}]}', 400, "invalid"),
    ("nul-key", b'{"resourceType":"Patient","a\\u0000":1}', 400, "invalid"),
    ("lone-high-surrogate", b'{"resourceType":"Patient","name":[{"family":"\\ud800"}]}',
     400, "invalid"),
    ("lone-low-surrogate", b'{"resourceType":"Patient","name":[{"family":"\\udc00x"}]}',
     400, "invalid"),
    ("invalid-utf8", b'{"resourceType":"Patient","name":[{"family":"\xff\xfe"}]}', 400,
     "invalid"),
    ("overlong-utf8", b'{"resourceType":"Patient","name":[{"family":"\xc0\xaf"}]}', 400,
     "invalid"),
    ("utf16", '{"resourceType":"Patient"}'.encode("utf-16"), 400, "invalid"),
    ("quantity-overflow", b"{" + OBSERVATION + b',"valueQuantity":{"value":1e999999}}',
     400, "invalid"),
    ("quantity-underflow", b"{" + OBSERVATION + b',"valueQuantity":{"value":1e-999999}}',
     400, "invalid"),
    ("integer-beyond-64-bits",
     b'{"resourceType":"Patient","multipleBirthInteger":99999999999999999999999}', 422,
     "value"),
    ("birthdate-number", b'{"resourceType":"Patient","birthDate":5}', 422, "structure"),
    ("birthdate-month-13", b'{"resourceType":"Patient","birthDate":"2020-13-45"}', 422,
     "value"),
    ("birthdate-year-0", b'{"resourceType":"Patient","birthDate":"0000-01-01"}', 422,
     "value"),
    ("unknown-element", b'{"resourceType":"Patient","hostile":true}', 422, "structure"),
    ("reference-number", b"{" + OBSERVATION + b',"subject":{"reference":5}}', 422,
     "structure"),
    ("name-object", b'{"resourceType":"Patient","name":{"family":"x"}}', 422, "structure"),
    ("active-string", b'{"resourceType":"Patient","active":"yes"}', 422, "structure"),
]


def _cases() -> list[Case]:
    cases: list[Case] = []
    for name, body, status, code in VECTORS:
        resource = body
        kind = "Observation" if b"Observation" in body else "Patient"
        cases += [
            Case(f"create-{name}", "POST", f"/{kind}", status, code, resource),
            Case(f"conditional-create-{name}", "POST", f"/{kind}", status, code, resource,
                 {"If-None-Exist": "identifier=urn:hostile|none"}),
            Case(f"update-{name}", "PUT", f"/{kind}/hostile-body", status, code,
                 resource.replace(b'"resourceType":"' + kind.encode() + b'"',
                                  b'"resourceType":"' + kind.encode()
                                  + b'","id":"hostile-body"')),
            Case(f"conditional-update-{name}", "PUT", f"/{kind}?identifier=urn:hostile|none",
                 status, code, resource),
        ]
        if body.strip() and not name.startswith("utf16"):
            # JSON-level faults make the whole Bundle unreadable: the same answer
            entry = (b'{"request":{"method":"POST","url":"' + kind.encode()
                     + b'"},"resource":' + body + b"}")
            cases.append(Case(
                f"transaction-{name}", "POST", "", status, code,
                b'{"resourceType":"Bundle","type":"transaction","entry":[' + entry + b"]}"))
    return cases


@pytest.mark.parametrize("case", params(_cases()))
def test_hostile_body_is_refused(case: Case, fhir: httpx.Client,
                                 stored: Callable[[], int]) -> None:
    check(case, fhir, stored)
