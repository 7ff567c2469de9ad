"""Bundle link query strings."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fhir_server.api.common import query_string


def test_query_strings_keep_fhir_punctuation_readable() -> None:
    pairs = [("family:exact", "Ängström"), ("code", "http://loinc.org|8867-4,1234-5"),
             ("code-value-quantity", "http://loinc.org|8867-4$gt70"), ("given", "a b&c=d")]
    text = query_string(pairs)
    assert text == ("family:exact=%C3%84ngstr%C3%B6m&code=http://loinc.org%7C8867-4,1234-5"
                    "&code-value-quantity=http://loinc.org%7C8867-4$gt70&given=a+b%26c%3Dd")
    assert parse_qsl(text) == pairs
