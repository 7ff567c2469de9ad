"""``_summary`` and ``_elements`` subsetting of single resources."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_server.definitions import Definitions
from fhir_server.errors import BadRequest
from fhir_server.service.subsetting import (
    SUBSETTED_CODE,
    SUBSETTED_SYSTEM,
    select_elements,
    summarize,
)

SUBSETTED = {"system": SUBSETTED_SYSTEM, "code": SUBSETTED_CODE}
DIV = '<div xmlns="http://www.w3.org/1999/xhtml">Peter</div>'


@pytest.fixture(scope="session")
def definitions() -> Definitions:
    """Loaded once per session (the service folder has no conftest of ours)."""
    return Definitions.load()


def _patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "2", "tag": [{"system": "http://example.org", "code": "t"}]},
        "text": {"status": "generated", "div": DIV},
        "extension": [{"url": "http://example.org/e", "valueString": "x"}],
        "identifier": [{"value": "123"}],
        "active": True,
        "name": [{"family": "Chalmers", "given": ["Peter"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://example.org/t", "valueString": "x"}]},
        "deceasedBoolean": False,
        "maritalStatus": {"text": "married"},
        "contact": [{"name": {"family": "Du Marché"}}],
        "link": [{"other": {"reference": "Patient/2"}, "type": "seealso",
                  "extension": [{"url": "http://example.org/l", "valueString": "y"}]}],
    }


def _tags(resource: dict[str, Any]) -> list[dict[str, Any]]:
    tags: list[dict[str, Any]] = resource.get("meta", {}).get("tag", [])
    return tags


def test_summary_true(definitions: Definitions) -> None:
    original = _patient()
    before = copy.deepcopy(original)
    out = summarize(original, "true", definitions)
    assert original == before, "the input is never modified"
    assert list(out) == ["resourceType", "id", "meta", "identifier", "active", "name",
                         "gender", "birthDate", "_birthDate", "deceasedBoolean", "link"]
    # Backbone elements keep only their own summary (and mandatory) children.
    assert out["link"] == [{"other": {"reference": "Patient/2"}, "type": "seealso"}]
    assert out["name"] == original["name"]  # data types are kept whole
    assert _tags(out) == [{"system": "http://example.org", "code": "t"}, SUBSETTED]
    assert out["meta"]["versionId"] == "2"


def test_summary_true_keeps_mandatory_elements(definitions: Definitions) -> None:
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "note": [{"text": "n"}], "_status": {"id": "s"}}
    out = summarize(observation, "true", definitions)
    assert out == {"resourceType": "Observation", "meta": {"tag": [SUBSETTED]},
                   "status": "final", "code": {"text": "x"}, "_status": {"id": "s"}}


def test_summary_true_drops_emptied_backbones(definitions: Definitions) -> None:
    bundle = {"resourceType": "Bundle", "type": "searchset",
              "entry": [{"fullUrl": "urn:x", "search": {"mode": "match"}}]}
    out = summarize(bundle, "true", definitions)
    assert out["entry"] == [{"fullUrl": "urn:x", "search": {"mode": "match"}}]
    assert "meta" not in out  # everything is summary: nothing removed, no tag


def test_summary_text(definitions: Definitions) -> None:
    out = summarize(_patient(), "text", definitions)
    assert list(out) == ["resourceType", "id", "meta", "text"]
    assert SUBSETTED in _tags(out)
    encounter = {"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"},
                 "text": {"status": "generated", "div": DIV}, "priority": {"text": "p"}}
    assert list(summarize(encounter, "text", definitions)) == [
        "resourceType", "meta", "status", "class", "text"]


def test_summary_data(definitions: Definitions) -> None:
    original = _patient()
    out = summarize(original, "data", definitions)
    assert "text" not in out
    assert set(out) == set(original) - {"text"}
    assert _tags(out).count(SUBSETTED) == 1


def test_summary_data_without_text_is_not_tagged(definitions: Definitions) -> None:
    resource = {"resourceType": "Patient", "id": "x", "active": True}
    assert summarize(resource, "data", definitions) == resource


def test_summary_false_is_unchanged(definitions: Definitions) -> None:
    original = _patient()
    assert summarize(original, "false", definitions) is original


@pytest.mark.parametrize("mode", ["count", "TRUE", "yes", ""])
def test_invalid_summary(definitions: Definitions, mode: str) -> None:
    with pytest.raises(BadRequest) as caught:
        summarize(_patient(), mode, definitions)
    assert caught.value.status == 400


def test_tag_is_not_duplicated(definitions: Definitions) -> None:
    once = summarize(_patient(), "text", definitions)
    twice = summarize(once, "text", definitions)
    assert _tags(twice).count(SUBSETTED) == 1
    again = select_elements(summarize(_patient(), "true", definitions), ["name"], definitions)
    assert _tags(again).count(SUBSETTED) == 1


def test_meta_is_added_after_id(definitions: Definitions) -> None:
    resource = {"resourceType": "Patient", "id": "x", "active": True, "gender": "male"}
    out = select_elements(resource, ["gender"], definitions)
    assert out == {"resourceType": "Patient", "id": "x", "meta": {"tag": [SUBSETTED]},
                   "gender": "male"}


def test_select_elements(definitions: Definitions) -> None:
    original = _patient()
    before = copy.deepcopy(original)
    out = select_elements(original, ["name", "birthDate"], definitions)
    assert original == before
    assert list(out) == ["resourceType", "id", "meta", "name", "birthDate", "_birthDate"]
    assert SUBSETTED in _tags(out)


@pytest.mark.parametrize("names", [["name.family"], ["Patient.name"], [" name "]])
def test_select_elements_paths(definitions: Definitions, names: list[str]) -> None:
    out = select_elements(_patient(), names, definitions)
    assert out["name"] == _patient()["name"]
    assert "gender" not in out


@pytest.mark.parametrize("name", ["deceased", "deceased[x]", "deceasedBoolean"])
def test_select_choice_elements(definitions: Definitions, name: str) -> None:
    out = select_elements(_patient(), [name], definitions)
    assert out["deceasedBoolean"] is False


def test_select_keeps_mandatory_and_ignores_unknown(definitions: Definitions) -> None:
    encounter = {"resourceType": "Encounter", "id": "e", "status": "planned",
                 "class": {"code": "AMB"}, "priority": {"text": "p"},
                 "serviceType": {"text": "s"}}
    out = select_elements(encounter, ["nope", "priority"], definitions)
    assert out == {"resourceType": "Encounter", "id": "e", "meta": {"tag": [SUBSETTED]},
                   "status": "planned", "class": {"code": "AMB"}, "priority": {"text": "p"}}
    assert "meta" not in encounter


def test_select_everything_is_not_tagged(definitions: Definitions) -> None:
    resource = {"resourceType": "Patient", "id": "x", "gender": "male"}
    assert select_elements(resource, ["gender"], definitions) == resource
