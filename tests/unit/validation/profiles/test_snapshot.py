"""Snapshot generation from differentials."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fhir_server.paths import data_dir
from fhir_server.validation.profiles import ProfileError, ProfileSet
from fhir_server.validation.profiles.loader import core_structures, read_folders
from fhir_server.validation.profiles.snapshot import Element, Resolved, generate
from tests.unit.validation.profiles.conftest import BASE, CORE, structure

VITALS = data_dir("profiles") / "vitalsigns"


@pytest.fixture(scope="module")
def core() -> dict[str, dict[str, Any]]:
    return core_structures(data_dir("profiles"))


def _generator(core: dict[str, dict[str, Any]], structures: list[dict[str, Any]]) -> Any:
    by_url = {sd["url"]: sd for sd in structures}

    def types(url: str) -> list[Element] | None:
        return core[url]["snapshot"]["element"] if url in core else None

    def resolve(url: str) -> Resolved | None:
        if url in by_url:
            without = {k: v for k, v in by_url[url].items() if k != "snapshot"}
            return generate(without, resolve, types)
        if url in core:
            return copy.deepcopy(core[url]["snapshot"]["element"]), frozenset()
        return None
    return resolve


def _facts(element: dict[str, Any]) -> tuple[Any, ...]:
    return (element.get("min"), element.get("max"),
            sorted(t["code"] for t in element.get("type") or ()),
            sorted((k, json.dumps(v)) for k, v in element.items()
                   if k.startswith(("fixed", "pattern"))),
            element.get("sliceName"), element.get("binding", {}).get("strength"))


def _published(sd: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """The published snapshot with type slices of a choice (``value[x]:valueQuantity``,
    how the publisher writes a differential's ``valueQuantity``) folded into the choice:
    the generator restricts the choice itself, which means the same."""
    out: dict[str, tuple[Any, ...]] = {}
    folded: dict[str, str] = {}
    for element in sd["snapshot"]["element"]:
        element_id = element["id"]
        for old, new in folded.items():
            if element_id.startswith(old + "."):
                element_id = new + element_id[len(old):]
        stem, _, slice_name = element_id.rpartition(":")
        if stem.endswith("[x]") and "." not in slice_name:
            folded[element_id] = stem
            out[stem] = _facts({**element, "sliceName": None})
            continue
        out[element_id] = _facts(element)
    return out


@pytest.mark.parametrize("name", ["vitalsigns", "bp", "bmi", "bodyweight", "heartrate",
                                  "vitalspanel"])
def test_generated_snapshot_matches_the_published_one(core: dict[str, Any], name: str) -> None:
    structures = read_folders([VITALS]).structures
    sd = next(s for s in structures if s["id"] == name)
    elements, changed = _generator(core, structures)(sd["url"])
    generated = {e["id"]: _facts(e) for e in elements}
    published = _published(sd)
    # the generator also unfolds children of sliced elements the publisher leaves out
    assert {k: generated.get(k) for k in published} == published
    assert f"{CORE}vitalsigns" != sd["url"] or "Observation.category:VSCat" in changed


def test_a_differential_into_a_data_type_unfolds_it(core: dict[str, Any]) -> None:
    sd = json.loads((data_dir("profiles") / "hospital" /
                     "StructureDefinition-hospital-encounter.json").read_text())
    elements, changed = _generator(core, [sd])(sd["url"])
    by_id = {e["id"]: e for e in elements}
    assert by_id["Encounter.period"]["min"] == 1
    start = by_id["Encounter.period.start"]
    assert (start["path"], start["min"], start["max"], start["type"]) == \
        ("Encounter.period.start", 1, "1", [{"code": "dateTime"}])
    assert by_id["Encounter.period.end"]["min"] == 0  # unfolded, unchanged
    ids = [e["id"] for e in elements]
    assert ids.index("Encounter.period") < ids.index("Encounter.period.start") < \
        ids.index("Encounter.hospitalization")
    assert changed == {"Encounter", "Encounter.subject", "Encounter.period",
                       "Encounter.period.start"}  # no binding set (no ``id#binding``)


def test_a_profile_on_a_profile_inherits_its_slices(profiles: ProfileSet) -> None:
    child = profiles.profiles[BASE + "child-patient"]
    identifier = child.root.child("identifier")
    assert identifier is not None
    assert [s.slice_name for s in identifier.slices] == ["mrn", "ssn"]
    birth = child.root.child("birthDate")
    assert birth is not None and (birth.min, birth.changed) == (1, True)
    assert [(c["key"], c["context"], c["source"]) for c in child.constraints] == \
        [("child-1", "Patient.birthDate", BASE + "child-patient")]


@pytest.mark.parametrize(("elements", "base", "message"), [
    ([{"id": "Patient.nothing", "path": "Patient.nothing", "min": 1}], None,
     "element Patient.nothing is not in its base"),
    ([{"id": "Patient.name", "path": "Patient.name", "min": 1}], BASE + "missing",
     f"its base {BASE}missing is not known"),
    ([{"id": "Patient.identifier:a/b", "path": "Patient.identifier", "sliceName": "a/b"}],
     None, "re-slicing"),
])
def test_a_differential_that_cannot_resolve_is_refused(
        core: dict[str, Any], elements: list[dict[str, Any]], base: str | None,
        message: str) -> None:
    sd = structure("broken", "Patient", elements, base)
    with pytest.raises(ProfileError, match=message):
        _generator(core, [sd])(sd["url"])
