"""What is staged: the events' JSON, storable by PostgreSQL whatever was asked."""

from __future__ import annotations

import orjson

from fhir_server.audit.writer import Record, payload


def test_events_are_staged_as_they_are() -> None:
    events = [Record("a", {"id": "a", "outcomeDesc": "200"}),
              Record("b", {"id": "b", "entity": [{"query": "bmFtZT14"}]})]
    assert orjson.loads(payload(events)) == [r.event for r in events]


def test_a_nul_character_asked_for_is_staged_as_a_replacement_character() -> None:
    event = {"id": "a", "outcomeDesc": "404: Patient/x/_history/\x00",
             "entity": [{"detail": [{"type": "\x00", "valueString": "a\x00b"}]}]}
    staged = payload([Record("a", event)])
    assert "\\u0000" not in staged
    assert orjson.loads(staged) == [{
        "id": "a", "outcomeDesc": "404: Patient/x/_history/\ufffd",
        "entity": [{"detail": [{"type": "\ufffd", "valueString": "a\ufffdb"}]}]}]
